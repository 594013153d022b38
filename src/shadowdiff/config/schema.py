"""The config's sections: frozen dataclasses whose fields carry their default, their
own check, whether they are secret, and whether changing them needs a restart.

`restart=True` marks what a running proxy cannot take on (listen addresses, pool
sizes, upstream URLs): `config.live.restart_changes()` reads it. Everything else
(rules, routes, sampling, filters, redaction, timeouts) may change while running.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

MiB = 1024 * 1024
SECRET_MASK = "**********"

# Upper bounds by what a numeric key measures, read from its name (tests/config checks
# that every numeric key is one of these): durations (`*timeout`, `*cooldown`) in
# seconds, sizes (`*_bytes`), and counts (every other whole number). Past them a value
# is a typo, not a setting, and would overflow later (a timer, an allocation).
MAX_SECONDS = 86_400  # a day
MAX_BYTES = 1 << 40  # 1 TiB
MAX_COUNT = 1_000_000


class ConfigError(ValueError):
    """The configuration is invalid; `problems` holds one `key.path: message` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"must be HOST:PORT, got {text!r}")
        host = host.strip("[]")  # [::1]:9901
        if not host:
            raise ValueError(f"must be HOST:PORT with a host, got {text!r}")
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# -- field checks: each returns an error message or None -------------------------


def bound_problem(name: str, value: float) -> str | None:
    """The upper bound a numeric key `name` has by what it measures (see MAX_SECONDS), broken or not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name.endswith(("timeout", "cooldown")):
        limit, unit = MAX_SECONDS, " seconds (a day)"
    elif name.endswith("_bytes"):
        limit, unit = MAX_BYTES, " bytes (1 TiB)"
    elif isinstance(value, int):
        limit, unit = MAX_COUNT, ""
    else:
        return None  # fractions and tolerances: their own checks
    if value <= limit:
        return None
    shown = str(value) if isinstance(value, float) or value.bit_length() < 80 else f"a number of {value.bit_length()} bits"
    return f"must be at most {limit}{unit}, got {shown}"


def mask_credentials(text: str) -> str:
    """`text` (a message, a URL yarl may not even parse) with, on each line, everything before
    the last `@` masked from the last `//` before it (or, without one, from the start of the
    word holding it):
    an error message about an upstream URL never prints its password, even one with quotes,
    spaces or `@` in it."""
    lines = []
    for line in text.split("\n"):
        at = line.rfind("@")
        if at >= 0:
            scheme = line.rfind("//", 0, at)  # masking too much of a message beats printing a password
            start = scheme + 2 if scheme >= 0 else max(line.rfind(c, 0, at) for c in " '\"{(=") + 1
            line = line[:start] + SECRET_MASK + line[at:]
        lines.append(line)
    return "\n".join(lines)


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be 0 or more, got {value}"


def _fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be between 0 and 1, got {value}"


def _upstream_url(value: str) -> str | None:
    try:
        url = URL(value)
    except ValueError as exc:
        return f"not a valid URL ({exc}): {value!r}"
    if url.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {value!r}"
    if not url.host:
        return f"must name a host, got {value!r}"
    if url.query_string or url.fragment:
        return f"must not carry a query or fragment, got {value!r}"
    return None


def _header_name(value: str) -> str | None:
    allowed = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if value and set(value) <= allowed:
        return None
    return f"must be an HTTP header name, got {value!r}"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def _http_methods(value: tuple[str, ...]) -> str | None:
    bad = [m for m in value if not m.isalpha() or m != m.upper()]
    return f"must be upper-case HTTP method names, got {bad}" if bad else None


def _route_templates(value: tuple[str, ...]) -> str | None:
    bad = [t for t in value if not t.startswith("/")]
    if bad:
        return f"templates must start with '/', got {bad}"
    # A template is a metric label and a log field as it is: printable, no spaces.
    unprintable = [t for t in value if any(c.isspace() or not c.isprintable() for c in t)]
    return f"templates must not hold spaces or control characters, got {unprintable}" if unprintable else None


def _json_path(value: str) -> str | None:
    from shadowdiff.compare.paths import PathError, parse

    try:
        parse(value)
    except PathError as exc:
        return str(exc)
    return None


def _regex(value: str) -> str | None:
    """A user's regex must run on RE2 (linear time): see shadowdiff.compare.patterns."""
    from shadowdiff.compare.patterns import PatternError, check

    try:
        check(value)
    except PatternError as exc:
        return str(exc)
    return None


def _regexes(value: tuple[str, ...]) -> list[str]:
    """Each entry a pattern RE2 can run; problems name the entry."""
    return [f"[{index}]: {message}" for index, pattern in enumerate(value) if (message := _regex(pattern))]


def _networks(value: tuple[str, ...]) -> list[str]:
    """Each entry an IP network in CIDR form (or one address); problems name the entry."""
    out = []
    for index, entry in enumerate(value):
        try:
            ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            out.append(f"[{index}]: not an IP network in CIDR form ({exc}): {entry!r}")
    return out


def _lower_names(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if _header_name(v)]
    return f"must be header names, got {bad}" if bad else None


def _setting(
    default: Any,
    check: Callable[[Any], str | list[str] | None] | None = None,
    *,
    secret: bool = False,
    restart: bool = False,
) -> Any:
    """A config field: its default, an optional check, whether to mask it, and whether
    a running proxy needs a restart to take a new value (for a section: any of its keys).

    A check returns a message, or a list of them; one starting with `[i]` names an item."""
    meta = {"check": check, "secret": secret, "restart": restart}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


# -- the sections ----------------------------------------------------------------


# Header limits, at least as generous as Envoy's defaults (100 headers, 60 KiB of
# headers) and nginx's (8 KiB a line). An upstream's answer may have up to 256 lines
# (real answers carry big CSP and cookie headers; past it, a 502). A client's request
# head may have 128 header lines and 64 KiB in all (request line and CRLFs included),
# past either a 431. One line may fill the whole head: Envoy takes a 50 KiB header,
# so a shorter line limit would refuse what Envoy accepts, and the head's byte bound,
# not the line's, is what bounds memory.
MAX_HEADERS = 256
MAX_REQUEST_HEADERS = 128
MAX_HEADER_LINE_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024

# Peers whose X-Forwarded-*, Forwarded and X-Real-IP are kept: loopback (a mesh sidecar
# such as Envoy or linkerd-proxy connects from it) and the private ranges an ingress or
# load balancer in the same cluster or VPC connects from. Anyone else's are replaced.
TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


@dataclass(frozen=True, slots=True)
class ListenConfig:
    address: HostPort = _setting(HostPort("0.0.0.0", 8080))
    max_request_body_bytes: int = _setting(10 * MiB, _non_negative)
    max_connections: int = _setting(1024, _positive)
    max_headers: int = _setting(MAX_REQUEST_HEADERS, _positive)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, _positive)
    max_head_bytes: int = _setting(MAX_HEAD_BYTES, _positive)
    head_timeout: float = _setting(10.0, _positive, restart=True)  # the TrafficServer takes it at start
    idle_timeout: float = _setting(75.0, _positive)
    request_timeout: float = _setting(60.0, _positive)
    shutdown_timeout: float = _setting(15.0, _non_negative)
    workers: int = _setting(1, _positive)  # processes sharing the port (SO_REUSEPORT); bounds apply per process
    trusted_proxies: tuple[str, ...] = _setting(TRUSTED_PROXIES, _networks)


@dataclass(frozen=True, slots=True)
class PrimaryConfig:
    url: str = _setting("", _upstream_url, secret=True, restart=True)
    timeout: float = _setting(30.0, _positive)
    connect_timeout: float = _setting(5.0, _positive)
    max_connections: int = _setting(1000, _positive, restart=True)
    max_headers: int = _setting(MAX_HEADERS, _positive, restart=True)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, _positive, restart=True)


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    url: str = _setting("", _upstream_url, secret=True, restart=True)
    timeout: float = _setting(5.0, _positive)
    connect_timeout: float = _setting(1.0, _positive)
    host_header: str = _setting("own", _one_of("own", "client"), restart=True)
    max_headers: int = _setting(MAX_HEADERS, _positive, restart=True)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, _positive, restart=True)


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    enabled: bool = _setting(True)
    sample_rate: float = _setting(1.0, _fraction)
    sample_key: str | None = _setting(None, _header_name)
    methods: tuple[str, ...] = _setting(("GET", "HEAD", "OPTIONS"), _http_methods)
    include_paths: tuple[str, ...] = _setting(())
    exclude_paths: tuple[str, ...] = _setting(())
    max_in_flight: int = _setting(100, _positive, restart=True)  # also the shadow's pool size
    max_body_bytes: int = _setting(1 * MiB, _non_negative)
    # Request bodies held for mirroring, all requests together; past it a body is streamed
    # to the primary and not mirrored (skip reason buffer_full).
    max_buffered_bytes: int = _setting(64 * MiB, _non_negative)
    marker_header: str = _setting("X-Shadow-Request", _header_name, restart=True)
    marker_value: str = _setting("true", restart=True)
    drain_timeout: float = _setting(5.0, _non_negative)
    breaker_failures: int = _setting(20, _non_negative, restart=True)
    breaker_cooldown: float = _setting(5.0, _positive, restart=True)


RULE_KINDS = ("ignore", "mask", "tolerance", "unordered", "ignore_header")
_RULE_NEEDS = {"ignore": "path", "unordered": "path", "mask": "pattern", "ignore_header": "header"}
_RULE_USES = {
    "ignore": {"path"},
    "unordered": {"path"},
    "mask": {"pattern", "path"},
    "tolerance": {"absolute", "relative", "path"},
    "ignore_header": {"header"},
}


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One comparison rule. Every rule says why (`reason`); `routes` limits where it applies."""

    kind: str = _setting("", _one_of(*RULE_KINDS))
    reason: str = _setting("")
    path: str | None = _setting(None, _json_path)
    pattern: str | None = _setting(None, _regex)
    header: str | None = _setting(None, _header_name)
    absolute: float | None = _setting(None, _non_negative)
    relative: float | None = _setting(None, _non_negative)
    routes: tuple[str, ...] = _setting((), _route_templates)

    def problems(self) -> list[str]:
        """Problems that involve several keys, as `key: message` relative to this rule."""
        if not self.kind:
            return [f"kind: required, one of {', '.join(RULE_KINDS)}"]
        out = []
        if not self.reason.strip():
            out.append("reason: required: say why this difference is acceptable")
        needed = _RULE_NEEDS.get(self.kind)
        if needed and getattr(self, needed) is None:
            out.append(f"{needed}: required for kind {self.kind}")
        if self.kind == "tolerance" and not (self.absolute or self.relative):
            out.append("absolute: set absolute or relative (or both) above 0 for kind tolerance")
        if self.kind == "ignore" and self.path == "$":
            out.append("path: ignoring the whole body ('$') would hide every difference")
        for key in ("path", "pattern", "header", "absolute", "relative"):
            if getattr(self, key) is not None and key not in _RULE_USES[self.kind]:
                out.append(f"{key}: not used by kind {self.kind}")
        return out


@dataclass(frozen=True, slots=True)
class CompareConfig:
    max_body_bytes: int = _setting(1 * MiB, _non_negative)
    max_decoded_bytes: int = _setting(8 * MiB, _non_negative)
    offload_bytes: int = _setting(64 * 1024, _non_negative)
    max_differences: int = _setting(20, _positive)
    timeout: float = _setting(10.0, _positive)  # per job in the comparison worker, from its start
    max_queued: int = _setting(32, _non_negative)  # jobs waiting for the worker; past it: skip compare_queue_full
    rules: tuple[RuleConfig, ...] = _setting(())


MAX_METRICS_INTERVAL = 60.0  # a scrape every 15-60 s is usual: a longer reuse would hide changes


def _metrics_interval(value: float) -> str | None:
    if 0 <= value <= MAX_METRICS_INTERVAL:  # NaN fails both comparisons, inf the second
        return None
    return f"must be between 0 and {MAX_METRICS_INTERVAL:g} seconds, got {value}"


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: HostPort = _setting(HostPort("127.0.0.1", 9901), restart=True)
    # One /metrics render is served to every scrape for this long after it (0: render each
    # scrape; concurrent scrapes still share one render). See shadowdiff.scrape.
    metrics_min_interval: float = _setting(1.0, _metrics_interval)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """What is written, and what is never written (publish/redact.py says what is hidden by default)."""

    level: str = _setting("info", _one_of("debug", "info", "warning", "error"))
    access_log: bool = _setting(False, restart=True)
    max_value_chars: int = _setting(200, _positive)
    # Header names whose values are always hidden, besides every name in a key family.
    redact_headers: tuple[str, ...] = _setting(
        ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"), _lower_names
    )
    redact_fields: tuple[str, ...] = _setting(())  # key terms added to the built-in families
    redact_keep: tuple[str, ...] = _setting(())  # family terms or whole key names never hidden
    redact_patterns: tuple[str, ...] = _setting((), _regexes)  # RE2 patterns hidden wherever they match


@dataclass(frozen=True, slots=True)
class Config:
    listen: ListenConfig = _setting(ListenConfig(), restart=True)
    primary: PrimaryConfig = _setting(PrimaryConfig())
    shadow: ShadowConfig = _setting(ShadowConfig())
    mirror: MirrorConfig = _setting(MirrorConfig())
    compare: CompareConfig = _setting(CompareConfig())
    routes: tuple[str, ...] = _setting((), _route_templates)
    admin: AdminConfig = _setting(AdminConfig())
    logging: LoggingConfig = _setting(LoggingConfig())
