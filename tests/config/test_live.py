"""Which config changes a running proxy can take: restart-only keys are named, live ones are not."""

from __future__ import annotations

import pytest

from shadowdiff import config as configuration
from shadowdiff.config.live import restart_changes

BASE = {"primary": {"url": "http://127.0.0.1:8000"}, "shadow": {"url": "http://127.0.0.1:8001"}}


def _changed(section: str, key: str, value: object) -> configuration.Config:
    raw = {name: dict(values) for name, values in BASE.items()}
    raw.setdefault(section, {})[key] = value
    return configuration.from_mapping(raw)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("listen", "address", "127.0.0.1:8081"),
        ("listen", "workers", 4),
        ("listen", "max_connections", 10),
        ("listen", "head_timeout", 2),
        ("listen", "max_head_bytes", 32768),
        ("listen", "trusted_proxies", ["10.0.0.0/8"]),
        ("admin", "listen", "127.0.0.1:9902"),
        ("primary", "url", "http://127.0.0.1:9000"),
        ("primary", "max_connections", 5),
        ("shadow", "url", "http://127.0.0.1:9001"),
        ("mirror", "max_in_flight", 5),
        ("logging", "access_log", True),
    ],
)
def test_restart_only_keys_are_named(section: str, key: str, value: object) -> None:
    """Changing a listen address, a pool size or an upstream URL is reported by its key path."""
    assert restart_changes(configuration.from_mapping(BASE), _changed(section, key, value)) == [f"{section}.{key}"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("mirror", "sample_rate", 0.1),
        ("mirror", "enabled", False),
        ("mirror", "include_paths", ["/api/*"]),
        ("primary", "timeout", 3.0),
        ("shadow", "timeout", 1.0),
        ("compare", "max_differences", 3),
        ("logging", "redact_fields", ["ssn"]),
        ("logging", "level", "debug"),
        ("admin", "metrics_min_interval", 5.0),
    ],
)
def test_live_keys_need_no_restart(section: str, key: str, value: object) -> None:
    """Sampling, filters, timeouts, comparison settings and redaction may change while running."""
    assert restart_changes(configuration.from_mapping(BASE), _changed(section, key, value)) == []


def test_routes_and_rules_are_live() -> None:
    """Route templates and comparison rules (lists of sections) change without a restart."""
    new = configuration.from_mapping(
        {**BASE, "routes": ["/users/{id}"], "compare": {"rules": [{"kind": "ignore", "path": "$.t", "reason": "time"}]}}
    )
    assert restart_changes(configuration.from_mapping(BASE), new) == []
