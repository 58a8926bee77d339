"""thrifty's settings: one pydantic-settings model (`Settings`), its sections one module each."""

from thrifty.config._base import _Section
from thrifty.config.autopilot import AutopilotSettings
from thrifty.config.batches import BatchSettings
from thrifty.config.cache import CacheSettings
from thrifty.config.costs import CostSettings
from thrifty.config.embeddings import EmbeddingSettings
from thrifty.config.limits import LimitsSettings, QuotaLimits
from thrifty.config.local import LocalSettings, VLLMSettings
from thrifty.config.routing import (
    CascadeTarget,
    CheapestTarget,
    Conditions,
    ExperimentSettings,
    Overrides,
    Range,
    RouterSettings,
    RuleSettings,
    ShadowSettings,
    TimeWindow,
    VariantSettings,
)
from thrifty.config.safety import (
    DEFAULT_SELF_CHECK_PROMPT,
    AuthSettings,
    ModerationSettings,
    PrivacySettings,
    SelfCheckSettings,
    WordListSettings,
)
from thrifty.config.settings import Settings, config_path, load_settings
from thrifty.config.store import StoreSettings
from thrifty.config.telemetry import TelemetrySettings
from thrifty.config.train import DistillSettings
from thrifty.config.upstreams import (
    DEEPSEEK_ALIASES,
    DEEPSEEK_MODELS,
    DEFAULT_DEEPSEEK_URL,
    BreakerSettings,
    UpstreamModel,
    UpstreamSettings,
    deepseek_models,
)

__all__ = [
    "DEEPSEEK_ALIASES",
    "DEEPSEEK_MODELS",
    "DEFAULT_DEEPSEEK_URL",
    "DEFAULT_SELF_CHECK_PROMPT",
    "AuthSettings",
    "AutopilotSettings",
    "BatchSettings",
    "BreakerSettings",
    "CacheSettings",
    "CascadeTarget",
    "CheapestTarget",
    "Conditions",
    "CostSettings",
    "DistillSettings",
    "EmbeddingSettings",
    "ExperimentSettings",
    "LimitsSettings",
    "LocalSettings",
    "ModerationSettings",
    "Overrides",
    "PrivacySettings",
    "QuotaLimits",
    "Range",
    "RouterSettings",
    "RuleSettings",
    "SelfCheckSettings",
    "Settings",
    "ShadowSettings",
    "StoreSettings",
    "TelemetrySettings",
    "TimeWindow",
    "UpstreamModel",
    "UpstreamSettings",
    "VLLMSettings",
    "VariantSettings",
    "WordListSettings",
    "_Section",
    "config_path",
    "deepseek_models",
    "load_settings",
]
