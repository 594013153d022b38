"""Config loading: defaults, overrides, and every validation error naming its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowdiff import config as configuration
from shadowdiff.config import ConfigError, HostPort

MINIMAL = {"primary": {"url": "http://127.0.0.1:8000"}, "shadow": {"url": "http://127.0.0.1:8001"}}


def _with(section: str, key: str, value: object) -> dict:
    raw = {name: dict(values) for name, values in MINIMAL.items()}
    raw.setdefault(section, {})[key] = value
    return raw


def test_defaults_are_the_sidecar_defaults() -> None:
    """A file naming only the two upstreams gets the documented defaults."""
    config = configuration.from_mapping(MINIMAL)
    assert config.listen.address == HostPort("0.0.0.0", 8080)
    assert config.admin.listen == HostPort("127.0.0.1", 9901)
    assert config.mirror.sample_rate == 1.0
    assert config.mirror.methods == ("GET", "HEAD", "OPTIONS")
    assert config.mirror.max_in_flight == 100
    assert config.shadow.host_header == "own"
    assert (config.primary.timeout, config.primary.connect_timeout) == (30.0, 5.0)
    assert (config.shadow.timeout, config.shadow.connect_timeout) == (5.0, 1.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_with("mirror", "sample_rate", 1.5), "mirror.sample_rate: must be between 0 and 1, got 1.5"),
        (_with("mirror", "sample_rate", "half"), "mirror.sample_rate: must be a number, got str 'half'"),
        (_with("mirror", "max_in_flight", 0), "mirror.max_in_flight: must be greater than 0, got 0"),
        (_with("mirror", "max_in_flight", True), "mirror.max_in_flight: must be a whole number, got bool True"),
        (_with("mirror", "methods", "GET"), "mirror.methods: must be a list of strings, got str 'GET'"),
        (_with("mirror", "methods", ["get"]), "mirror.methods: must be upper-case HTTP method names, got ['get']"),
        (_with("mirror", "sample_key", "X User"), "mirror.sample_key: must be an HTTP header name, got 'X User'"),
        (_with("mirror", "enabled", "yes"), "mirror.enabled: must be true or false, got str 'yes'"),
        (_with("mirror", "bogus", 1), "mirror.bogus: unknown key"),
        (_with("primary", "url", "ftp://x"), "primary.url: must be an http:// or https:// URL, got 'ftp://x'"),
        (_with("primary", "url", "http://x/?a=1"), "primary.url: must not carry a query or fragment"),
        (_with("primary", "timeout", -1), "primary.timeout: must be greater than 0, got -1.0"),
        (_with("shadow", "connect_timeout", 0), "shadow.connect_timeout: must be greater than 0, got 0.0"),
        (_with("shadow", "host_header", "mine"), "shadow.host_header: must be one of own, client, got 'mine'"),
        (_with("listen", "address", "8080"), "listen.address: must be HOST:PORT, got '8080'"),
        (_with("admin", "listen", "127.0.0.1:99999"), "admin.listen: port must be between 0 and 65535"),
        (_with("compare", "max_body_bytes", -5), "compare.max_body_bytes: must be 0 or more, got -5"),
        (_with("logging", "level", "loud"), "logging.level: must be one of debug, info, warning, error"),
        ({**MINIMAL, "routes": ["users/{id}"]}, "routes: templates must start with '/'"),
        ({**MINIMAL, "routes": "/users"}, "routes: must be a list of strings"),
        ({**MINIMAL, "mirror": "on"}, "mirror: must be a mapping, got str 'on'"),
        ({**MINIMAL, "extra": {}}, "extra: unknown key (known: admin, compare"),
        ({"shadow": MINIMAL["shadow"]}, "primary.url: required"),
        ({"primary": MINIMAL["primary"]}, "shadow.url: required while mirror.enabled is true"),
    ],
)
def test_each_error_names_its_key_path(raw: dict, expected: str) -> None:
    """Each bad value is reported as `key.path: problem`."""
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(raw)
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_all_problems_are_reported_at_once() -> None:
    """Several bad keys give one message each, in one error."""
    raw = {**MINIMAL, "mirror": {"sample_rate": 2, "max_in_flight": -1, "nope": 1}}
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(raw)
    assert len(caught.value.problems) == 3


def test_shadow_is_optional_when_mirroring_is_off() -> None:
    """With mirror.enabled false, a primary alone is a valid config."""
    config = configuration.from_mapping({"primary": MINIMAL["primary"], "mirror": {"enabled": False}})
    assert config.shadow.url == ""


def test_overrides_beat_the_file(tmp_path: Path) -> None:
    """Dotted overrides (what CLI flags become) replace the file's values and are validated too."""
    path = tmp_path / "c.yaml"
    path.write_text("primary: {url: 'http://a:1'}\nshadow: {url: 'http://b:2'}\nlisten: {address: '0.0.0.0:1'}\n")
    config = configuration.load(path, {"listen.address": "127.0.0.1:9", "shadow.url": "http://c:3"})
    assert config.listen.address == HostPort("127.0.0.1", 9)
    assert config.shadow.url == "http://c:3"
    with pytest.raises(ConfigError, match="primary.url: must be an http"):
        configuration.load(path, {"primary.url": "nonsense"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("primary: [unclosed", "not valid YAML"), ("- a\n- b\n", "(top level): must be a mapping")],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    """Broken YAML and a non-mapping document are reported, not raised as tracebacks."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        configuration.load(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match="cannot read"):
        configuration.load(tmp_path / "absent.yaml")


def test_credentials_in_urls_are_masked() -> None:
    """The printed config hides user:password in upstream URLs."""
    raw = {"primary": {"url": "http://svc:s3cret@127.0.0.1:8000"}, "shadow": {"url": "http://127.0.0.1:8001/base"}}
    text = configuration.dump(configuration.from_mapping(raw))
    assert "s3cret" not in text and "svc" not in text
    assert "**********@127.0.0.1:8000" in text
    assert "http://127.0.0.1:8001/base" in text


def test_documented_example_is_valid() -> None:
    """config/shadowdiff.yaml, the documented example, loads without errors."""
    example = Path(__file__).resolve().parents[2] / "config" / "shadowdiff.yaml"
    config = configuration.load(example)
    assert config.primary.url and config.shadow.url


@pytest.mark.parametrize("value", [-1, 61, float("inf"), float("nan")])
def test_metrics_min_interval_is_bounded(value: float) -> None:
    """admin.metrics_min_interval must be a finite number of seconds from 0 to 60 (NaN and inf refused)."""
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(_with("admin", "metrics_min_interval", value))
    assert any(p.startswith("admin.metrics_min_interval: must be between 0 and 60 seconds") for p in caught.value.problems)


def test_metrics_min_interval_defaults_to_one_second_and_takes_zero() -> None:
    """One render is served for 1 s by default; 0 (a render per scrape) is allowed."""
    assert configuration.from_mapping(MINIMAL).admin.metrics_min_interval == 1.0
    assert configuration.from_mapping(_with("admin", "metrics_min_interval", 0)).admin.metrics_min_interval == 0.0
