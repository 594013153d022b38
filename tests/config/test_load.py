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
    # The head bounds: at least Envoy's (60 KiB, 100 headers) and nginx's (8 KiB a line).
    assert (config.listen.max_head_bytes, config.listen.max_headers, config.listen.max_header_line_bytes) == (65536, 128, 65536)
    assert config.listen.head_timeout == 10.0 and config.listen.idle_timeout == 75.0
    assert "127.0.0.0/8" in config.listen.trusted_proxies and "::1/128" in config.listen.trusted_proxies


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
        (_with("listen", "max_head_bytes", 0), "listen.max_head_bytes: must be greater than 0, got 0"),
        (_with("listen", "head_timeout", 0), "listen.head_timeout: must be greater than 0, got 0.0"),
        (_with("listen", "trusted_proxies", "10.0.0.0/8"), "listen.trusted_proxies: must be a list of strings"),
        (
            _with("listen", "trusted_proxies", ["127.0.0.1", "::1/128", "10.0.0.1/8"]),
            "listen.trusted_proxies[2]: not an IP network in CIDR form (10.0.0.1/8 has host bits set): '10.0.0.1/8'",
        ),
        (_with("listen", "trusted_proxies", ["10.0.0.0/8", "", "localhost"]), "listen.trusted_proxies[1]: not an IP network"),
        (_with("listen", "trusted_proxies", ["10.0.0.0/8", "", "localhost"]), "listen.trusted_proxies[2]: not an IP network"),
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


HUGE = 10**100


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_with("primary", "timeout", float("inf")), "primary.timeout: must be a finite number, got inf"),
        (_with("shadow", "timeout", float("nan")), "shadow.timeout: must be a finite number, got nan"),
        (_with("mirror", "sample_rate", float("nan")), "mirror.sample_rate: must be a finite number, got nan"),
        (_with("listen", "idle_timeout", 86_401), "listen.idle_timeout: must be at most 86400 seconds (a day), got 86401.0"),
        (_with("mirror", "breaker_cooldown", 10**6), "mirror.breaker_cooldown: must be at most 86400 seconds"),
        (_with("compare", "timeout", HUGE), "compare.timeout: must be at most 86400 seconds (a day), got 1e+100"),
        (_with("compare", "timeout", 10**400), "compare.timeout: must be a finite number, got int"),
        (_with("mirror", "max_body_bytes", (1 << 40) + 1), "mirror.max_body_bytes: must be at most 1099511627776 bytes (1 TiB)"),
        (_with("compare", "max_decoded_bytes", HUGE), "compare.max_decoded_bytes: must be at most 1099511627776 bytes (1 TiB), got a number of 333 bits"),
        (_with("mirror", "max_in_flight", 1_000_001), "mirror.max_in_flight: must be at most 1000000, got 1000001"),
        (_with("listen", "workers", HUGE), "listen.workers: must be at most 1000000, got a number of 333 bits"),
        (_with("logging", "max_value_chars", HUGE), "logging.max_value_chars: must be at most 1000000"),
        ({**MINIMAL, "compare": {"rules": [{"kind": "tolerance", "absolute": float("inf"), "reason": "x"}]}},
         "compare.rules[0].absolute: must be a finite number, got inf"),
        ({**MINIMAL, "routes": ["/users/{id} /x"]}, "routes: templates must not hold spaces or control characters"),
        ({**MINIMAL, "routes": ["/users/\x1b[31m"]}, "routes: templates must not hold spaces or control characters, got ['/users/\\x1b[31m']"),
        ({**MINIMAL, "compare": {"rules": [{"kind": "ignore", "path": "$.a", "reason": "x", "routes": ["/a\n/b"]}]}},
         "compare.rules[0].routes: templates must not hold spaces or control characters"),
        ({**MINIMAL, "compare": {"rules": [{"kind": "mask", "pattern": "(?<=x)y", "reason": "x"}]}},
         "compare.rules[0].pattern: RE2 cannot run this pattern"),
    ],
)
def test_numbers_are_range_checked_and_labels_printable(raw: dict, expected: str) -> None:
    """inf, NaN, values past the bound of what a key measures (a day, 1 TiB, 10**6) and huge integers are
    refused naming the key path; so are route templates with spaces or control characters."""
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(raw)
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_every_numeric_key_has_a_bound_by_what_it_measures() -> None:
    """Each numeric key of every section is a duration, a size or a count by its name (so bound_problem bounds
    it), or one of the few with a range of their own: a new key cannot slip past the bounds unnoticed."""
    import dataclasses
    import typing

    from shadowdiff.config import checks, schema

    own_range = {"sample_rate", "absolute", "relative", "reask_rate", "relative_threshold", "absolute_threshold"}
    sections = [schema.ListenConfig, schema.PrimaryConfig, schema.ShadowConfig, schema.MirrorConfig,
                schema.CompareConfig, schema.NoiseConfig, schema.LoggingConfig, schema.RuleConfig]  # fmt: skip
    for section in sections:
        hints = typing.get_type_hints(section)
        for spec in dataclasses.fields(section):
            numeric = hints[spec.name] in (int, float, int | None, float | None)
            if not numeric or spec.name in own_range:
                continue
            if hints[spec.name] in (float, float | None):
                assert spec.name.endswith(("timeout", "cooldown", "_window")), f"{section.__name__}.{spec.name}"
            assert checks.bound_problem(spec.name, 10**13) is not None, f"{section.__name__}.{spec.name}"


def test_huge_numbers_in_yaml_are_an_error_not_a_traceback(tmp_path: Path) -> None:
    """A 5,000-digit integer (PyYAML's int() refuses it) and `.inf` are ConfigErrors."""
    path = tmp_path / "c.yaml"
    path.write_text(f"primary: {{url: 'http://a:1'}}\nshadow: {{url: 'http://b:1'}}\nmirror: {{max_in_flight: {'9' * 5000}}}\n")
    with pytest.raises(ConfigError, match="more than 4300 digits"):
        configuration.load(path)
    path.write_text("primary: {url: 'http://a:1', timeout: .inf}\nshadow: {url: 'http://b:1', connect_timeout: .NaN}\n")
    with pytest.raises(ConfigError) as caught:
        configuration.load(path)
    assert caught.value.problems == [
        "primary.timeout: must be a finite number, got inf",
        "shadow.connect_timeout: must be a finite number, got nan",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://svc:s3cret@127.0.0.1:8000",  # wrong scheme
        "http://svc:s3cret@127.0.0.1:8000/?q=1",  # a query
        "http://svc:s3cret@[::1:8000",  # yarl cannot parse it
        "http://svc:s3cret@",  # no host
        "http://svc:s3/cr@et@host:1/?q",  # a slash and an @ in the password
        "svc:s3cret@host",  # no scheme at all
        "http:/svc:s3cret@host/",  # one slash
        "ftp://svc:s3 cret@host/",  # a space in the password
        "ftp://svc:s3'cr\"et@host/",  # quotes in the password
    ],
)
def test_config_errors_never_print_an_upstream_password(url: str) -> None:
    """Whatever is wrong with an upstream URL, the message names the key and masks user:password."""
    for section in ("primary", "shadow"):
        with pytest.raises(ConfigError) as caught:
            configuration.from_mapping(_with(section, "url", url))
        text = str(caught.value)
        assert f"{section}.url: " in text
        assert "s3" not in text and "svc" not in text, text


@pytest.mark.parametrize("value", [["http://svc:s3cret@h:1"], {"http://svc:s3cret@h:1": 1}, 12345])
def test_type_errors_on_secret_keys_print_no_value(value: object) -> None:
    """A secret key given the wrong type is reported by type alone."""
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(_with("primary", "url", value))
    [problem] = caught.value.problems
    assert problem == f"primary.url: must be a string, got {type(value).__name__}"


def test_yaml_errors_mask_a_url_password(tmp_path: Path) -> None:
    """PyYAML quotes the broken line in its message: the password in it is masked."""
    path = tmp_path / "c.yaml"
    for line in ("primary:\n  url: http://svc:s3cret@h:1: [\n", "primary: {url: 'http://u:s3\"cret@h/}\n"):
        path.write_text(line)
        with pytest.raises(ConfigError) as caught:
            configuration.load(path)
        assert "s3" not in str(caught.value) and "not valid YAML" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1, "must be between 0 and 60 seconds"), (61, "must be between 0 and 60 seconds"),
     (float("inf"), "must be a finite number"), (float("nan"), "must be a finite number")],
)  # fmt: skip
def test_metrics_min_interval_is_bounded(value: float, expected: str) -> None:
    """admin.metrics_min_interval must be a finite number of seconds from 0 to 60 (NaN and inf refused)."""
    with pytest.raises(ConfigError) as caught:
        configuration.from_mapping(_with("admin", "metrics_min_interval", value))
    assert any(p.startswith(f"admin.metrics_min_interval: {expected}") for p in caught.value.problems)


def test_metrics_min_interval_defaults_to_one_second_and_takes_zero() -> None:
    """One render is served for 1 s by default; 0 (a render per scrape) is allowed."""
    assert configuration.from_mapping(MINIMAL).admin.metrics_min_interval == 1.0
    assert configuration.from_mapping(_with("admin", "metrics_min_interval", 0)).admin.metrics_min_interval == 0.0
