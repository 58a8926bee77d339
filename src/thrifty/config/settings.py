"""thrifty's settings: one pydantic-settings model.

Sources, strongest first: keyword arguments (the CLI's flags), ``THRIFTY_*`` environment variables
(nested fields with ``__``: ``THRIFTY_LOCAL__MODEL=gemma3-270m``), the YAML file named by
``--config`` / ``THRIFTY_CONFIG`` (default ``./thrifty.yaml`` when it exists), then the defaults.
Every field carries a description: ``thrifty config example`` prints them as a commented
``thrifty.yaml`` (``thrifty.example.yaml`` is its output).

Secrets are never written in the file itself: an upstream names the environment variable that
holds its key (``api_key_env``), so ``config show`` and the logs never see it.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from thrifty.config.autopilot import AutopilotSettings
from thrifty.config.batches import BatchSettings
from thrifty.config.cache import CacheSettings
from thrifty.config.costs import CostSettings
from thrifty.config.embeddings import ENCODERS, EmbeddingSettings
from thrifty.config.limits import LimitsSettings
from thrifty.config.local import LocalSettings
from thrifty.config.routing import ExperimentSettings, RouterSettings
from thrifty.config.safety import AuthSettings, ModerationSettings, PrivacySettings
from thrifty.config.store import StoreSettings
from thrifty.config.telemetry import TelemetrySettings
from thrifty.config.train import DistillSettings
from thrifty.config.upstreams import (
    DEEPSEEK_ALIASES,
    DEEPSEEK_MODELS,
    DEFAULT_DEEPSEEK_URL,
    UpstreamSettings,
    deepseek_models,
)


class Settings(BaseSettings):
    """Everything thrifty reads at start."""

    model_config = SettingsConfigDict(
        env_prefix="THRIFTY_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, description="Port to listen on.")
    workers: int = Field(
        1,
        description="Gateway processes sharing the port (`serve --workers`); they share one local "
        "engine, the database, and Redis for limits.",
        ge=1,
    )
    home: Path = Field(
        default_factory=lambda: Path("~/.thrifty"),
        description="Where thrifty keeps its database and models ($THRIFTY_HOME).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    default_model: str = Field("local", description="Model used when a request names none.")
    local: LocalSettings = Field(default_factory=LocalSettings)
    upstreams: list[UpstreamSettings] = Field(
        default_factory=list, description="Cloud and other OpenAI-compatible upstreams."
    )
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    autopilot: AutopilotSettings = Field(default_factory=AutopilotSettings)
    batches: BatchSettings = Field(default_factory=BatchSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    experiments: dict[str, ExperimentSettings] = Field(
        default_factory=dict,
        description="A/B experiments by name; a request for model NAME is assigned a variant "
        "(sticky per user) and answered by that variant's model. Each: {variants: {control: "
        "{model: local, weight: 0.9}, cloud: {model: deepseek-chat, weight: 0.1}}}.",
    )
    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM); serves HTTPS.")
    ssl_keyfile: Path | None = Field(
        None, description="TLS private key (PEM) for ssl_certfile; keep it mode 0600."
    )
    prices: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra or overriding price tables by model (same schema as the shipped ones).",
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser()

    @model_validator(mode="after")
    def _known_embedder(self) -> Settings:
        name = self.embeddings.local_model
        entry = self.local.models.get(name) if name is not None else None
        if name is None or name in ENCODERS or getattr(entry, "embedding", False):
            return self
        raise ValueError(
            f"embeddings.local_model: {name!r} is neither an encoder ({', '.join(ENCODERS)}) "
            "nor a local.models entry with embedding: true"
        )

    @model_validator(mode="after")
    def _autopilot_captures(self) -> Settings:
        """The autopilot learns from captured cloud answers: on, it turns capture on for its
        tenants unless the config already names the tenants to capture."""
        if self.autopilot.enabled and not self.distill.capture_tenants:
            self.distill.capture_tenants = list(self.autopilot.tenants)
        return self

    @model_validator(mode="after")
    def _add_deepseek(self) -> Settings:
        """DEEPSEEK_API_KEY alone makes DeepSeek's API an upstream (DEEPSEEK_BASE_URL moves it).

        It serves deepseek-v4-flash and deepseek-v4-pro, and the older names clients use:
        deepseek-chat and deepseek-reasoner, sent as V4-Flash with thinking disabled / enabled.
        An upstream in the config that already offers any of these names wins: none is added.
        """
        if not os.environ.get("DEEPSEEK_API_KEY"):
            return self
        names = (*DEEPSEEK_ALIASES, *DEEPSEEK_MODELS)
        if any(name in u.models for u in self.upstreams for name in names):
            return self
        self.upstreams.append(
            UpstreamSettings(
                name="deepseek",
                base_url=os.environ.get("DEEPSEEK_BASE_URL") or DEFAULT_DEEPSEEK_URL,
                api_key_env="DEEPSEEK_API_KEY",
                models=deepseek_models(),
            )
        )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, _DatabaseUrlEnv(settings_cls)]
        path = config_path()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        return self.store.database_url or f"sqlite:///{self.home / 'thrifty.db'}"


class _DatabaseUrlEnv(PydanticBaseSettingsSource):
    """``THRIFTY_DATABASE_URL``: the short name of ``store.database_url``.

    It ranks with the environment: ``THRIFTY_STORE__DATABASE_URL`` (and a keyword argument) win
    over it; it wins over the YAML file.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        url = os.environ.get("THRIFTY_DATABASE_URL")
        return {"store": {"database_url": url}} if url else {}


_EXPLICIT_PATH: ContextVar[Path | None] = ContextVar("thrifty_config_path", default=None)


def config_path() -> Path | None:
    """The YAML file to read: --config, else $THRIFTY_CONFIG, else ./thrifty.yaml if present."""
    named = _EXPLICIT_PATH.get() or os.environ.get("THRIFTY_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return path
    local = Path("thrifty.yaml")
    return local if local.is_file() else None


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional config file plus overrides (the CLI's flags)."""
    token = _EXPLICIT_PATH.set(Path(config) if config is not None else None)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _EXPLICIT_PATH.reset(token)
