"""Configuration: typed sections (`schema`) and their value checks (`checks`), loading and showing (`load`), and which
changes a running proxy can take (`live`)."""

from shadowdiff.config.checks import SECRET_MASK
from shadowdiff.config.load import dump, from_mapping, load, mask_url, read, to_mapping
from shadowdiff.config.schema import (
    MiB, AdminConfig, CompareConfig, Config, ConfigError, HostPort, ListenConfig, LoggingConfig,
    MirrorConfig, NoiseConfig, PrimaryConfig, RecordConfig, RuleConfig, ShadowConfig, StoreConfig, TokenConfig,
)  # fmt: skip

__all__ = [
    "MiB", "SECRET_MASK", "AdminConfig", "CompareConfig", "Config", "ConfigError", "HostPort", "ListenConfig",
    "LoggingConfig", "MirrorConfig", "NoiseConfig", "PrimaryConfig", "RecordConfig", "RuleConfig", "ShadowConfig", "StoreConfig",
    "TokenConfig", "dump", "from_mapping", "load", "mask_url", "read", "to_mapping",
]  # fmt: skip
