"""The config's sections: frozen dataclasses whose fields carry their default, their
own check, whether they are secret, and whether changing them needs a restart.

`restart=True` marks what a running proxy cannot take on (listen addresses, pool
sizes, upstream URLs): `config.live.restart_changes()` reads it. Everything else
(rules, routes, sampling, filters, redaction, timeouts) may change while running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shadowdiff.config.checks import (
    fraction, header_name, http_methods, lower_names, networks, non_negative, one_of, positive,
    regex, regexes, route_templates, json_path, upstream_url,
)  # fmt: skip

MiB = 1024 * 1024


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
    max_request_body_bytes: int = _setting(10 * MiB, non_negative)
    max_connections: int = _setting(1024, positive)
    max_headers: int = _setting(MAX_REQUEST_HEADERS, positive)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, positive)
    max_head_bytes: int = _setting(MAX_HEAD_BYTES, positive)
    head_timeout: float = _setting(10.0, positive, restart=True)  # the TrafficServer takes it at start
    idle_timeout: float = _setting(75.0, positive)
    request_timeout: float = _setting(60.0, positive)
    shutdown_timeout: float = _setting(15.0, non_negative)
    workers: int = _setting(1, positive)  # processes sharing the port (SO_REUSEPORT); bounds apply per process
    trusted_proxies: tuple[str, ...] = _setting(TRUSTED_PROXIES, networks)


@dataclass(frozen=True, slots=True)
class PrimaryConfig:
    url: str = _setting("", upstream_url, secret=True, restart=True)
    timeout: float = _setting(30.0, positive)
    connect_timeout: float = _setting(5.0, positive)
    max_connections: int = _setting(1000, positive, restart=True)
    max_headers: int = _setting(MAX_HEADERS, positive, restart=True)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, positive, restart=True)


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    url: str = _setting("", upstream_url, secret=True, restart=True)
    timeout: float = _setting(5.0, positive)
    connect_timeout: float = _setting(1.0, positive)
    host_header: str = _setting("own", one_of("own", "client"), restart=True)
    max_headers: int = _setting(MAX_HEADERS, positive, restart=True)
    max_header_line_bytes: int = _setting(MAX_HEADER_LINE_BYTES, positive, restart=True)


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    enabled: bool = _setting(True)
    sample_rate: float = _setting(1.0, fraction)
    sample_key: str | None = _setting(None, header_name)
    methods: tuple[str, ...] = _setting(("GET", "HEAD", "OPTIONS"), http_methods)
    include_paths: tuple[str, ...] = _setting(())
    exclude_paths: tuple[str, ...] = _setting(())
    max_in_flight: int = _setting(100, positive, restart=True)  # also the shadow's pool size
    max_body_bytes: int = _setting(1 * MiB, non_negative)
    # Request bodies held for mirroring, all requests together; past it a body is streamed
    # to the primary and not mirrored (skip reason buffer_full).
    max_buffered_bytes: int = _setting(64 * MiB, non_negative)
    marker_header: str = _setting("X-Shadow-Request", header_name, restart=True)
    marker_value: str = _setting("true", restart=True)
    drain_timeout: float = _setting(5.0, non_negative)
    breaker_failures: int = _setting(20, non_negative, restart=True)
    breaker_cooldown: float = _setting(5.0, positive, restart=True)


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

    kind: str = _setting("", one_of(*RULE_KINDS))
    reason: str = _setting("")
    path: str | None = _setting(None, json_path)
    pattern: str | None = _setting(None, regex)
    header: str | None = _setting(None, header_name)
    absolute: float | None = _setting(None, non_negative)
    relative: float | None = _setting(None, non_negative)
    routes: tuple[str, ...] = _setting((), route_templates)

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
    max_body_bytes: int = _setting(1 * MiB, non_negative)
    max_decoded_bytes: int = _setting(8 * MiB, non_negative)
    offload_bytes: int = _setting(64 * 1024, non_negative)
    max_differences: int = _setting(20, positive)
    timeout: float = _setting(10.0, positive)  # per job in the comparison worker, from its start
    max_queued: int = _setting(32, non_negative)  # jobs waiting for the worker; past it: skip compare_queue_full
    rules: tuple[RuleConfig, ...] = _setting(())


@dataclass(frozen=True, slots=True)
class NoiseConfig:
    """A/A evidence (the primary's code against itself) and the verdicts drawn from it (shadowdiff.noise)."""

    secondary: str | None = _setting(None, upstream_url, secret=True, restart=True)  # a 2nd instance of the primary
    reask_rate: float = _setting(0.0, fraction)  # share of mirrored GET/HEAD asked of the primary again
    repeats: bool = _setting(True)  # identical requests seen again in live traffic (no deployment, no extra call)
    repeat_window: float = _setting(60.0, positive)  # seconds an answer is kept for a repeat
    repeat_max_bytes: int = _setting(4 * MiB, non_negative)  # answers kept for repeats, all together
    min_observations: int = _setting(20, positive)  # A/A comparisons on a route before a verdict
    relative_threshold: float = _setting(0.2, non_negative)  # Diffy's rule, on rates
    absolute_threshold: float = _setting(0.0003, fraction)
    max_fields: int = _setting(4000, positive, restart=True)  # (route, part, path) statistics kept, in all
    max_paths_per_route: int = _setting(200, positive, restart=True)
    max_field_series: int = _setting(1000, positive, restart=True)  # shadowdiff_field_differences_total series


URL_UNREADABLE = (
    "a PostgreSQL URL that does not parse: its port is not a number, or its password holds a slash, an at"
    " sign or a colon (percent-encode them, or leave the password out and set PGPASSWORD)"
)


def _store_url(value: str) -> str | None:
    if value.startswith(("postgresql://", "postgres://")):
        try:
            urlsplit(value).port
        except ValueError:  # its message would quote the URL, password and all
            return URL_UNREADABLE
        return None
    if value == "" or value.startswith("sqlite:///"):
        return None
    return "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB (\"\" for the default file)"


DAY = 86400.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The mismatch store: field statistics over time and sample exchanges (shadowdiff.store)."""

    enabled: bool = _setting(True, restart=True)
    # "" is the default file: $XDG_STATE_HOME/shadowdiff/store.db (~/.local/state/shadowdiff/store.db).
    url: str = _setting("", _store_url, secret=True, restart=True)
    instance: str = _setting("", restart=True)  # this proxy's name in a fleet's store ("": host name)
    samples_per_field: int = _setting(5, non_negative)  # whole exchanges kept per (route, part, path)
    max_age: float = _setting(7 * DAY, positive)  # seconds; older counts and samples are deleted
    max_bytes: int = _setting(256 * MiB, positive)  # the store's size; past it the oldest go first
    flush_interval: float = _setting(2.0, positive)  # seconds between writes of the statistics
    max_queued: int = _setting(256, positive)  # samples waiting for the writer; past it dropped


@dataclass(frozen=True, slots=True)
class RecordConfig:
    """Recording exchanges to gzip-compressed JSON lines, for `replay` (shadowdiff.record)."""

    enabled: bool = _setting(False, restart=True)
    # "" is $XDG_STATE_HOME/shadowdiff/recordings (~/.local/state/shadowdiff/recordings).
    directory: str = _setting("", restart=True)
    sample_rate: float = _setting(1.0, fraction, restart=True)  # share of compared exchanges recorded
    only_mismatches: bool = _setting(False, restart=True)
    methods: tuple[str, ...] = _setting((), restart=True)  # () records every method
    paths: tuple[str, ...] = _setting((), restart=True)  # shell globs on the path; () records every path
    max_file_bytes: int = _setting(64 * MiB, positive, restart=True)  # compressed; then a new file
    max_file_seconds: float = _setting(3600.0, positive, restart=True)  # a file's age; then a new file
    max_total_bytes: int = _setting(1024 * MiB, positive, restart=True)  # past it the oldest files go
    max_queued: int = _setting(1000, positive, restart=True)  # exchanges waiting for the writer; past it dropped


MAX_METRICS_INTERVAL = 60.0  # a scrape every 15-60 s is usual: a longer reuse would hide changes


def _metrics_interval(value: float) -> str | None:
    if 0 <= value <= MAX_METRICS_INTERVAL:  # NaN fails both comparisons, inf the second
        return None
    return f"must be between 0 and {MAX_METRICS_INTERVAL:g} seconds, got {value}"


ROLES = ("viewer", "operator")


def _role(value: str) -> str | None:
    return None if value in ROLES else f"must be viewer or operator, got {value[:40]!r}"


def _token_name(value: str) -> str | None:
    ok = 0 < len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value)
    return None if ok else "must be a name of 1 to 64 letters, digits, '-', '_' or '.' (it is what audit lines show)"


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """A named admin token with a role; the secret itself is read from a file or an environment
    variable at start, never written in the config."""

    name: str = _setting("", _token_name)
    role: str = _setting("viewer", _role)
    token_file: str = ""  # a file holding the token (surrounding whitespace ignored)
    token_env: str = ""  # or an environment variable holding it


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: HostPort = _setting(HostPort("127.0.0.1", 9901), restart=True)
    # Who may read and change what on the admin listener (README "Admin access"); restart to change.
    tokens: tuple[TokenConfig, ...] = _setting((), restart=True)
    allow_open: bool = _setting(False, restart=True)  # serve a non-loopback admin address with no tokens
    # One /metrics render is served to every scrape for this long after it (0: render each
    # scrape; concurrent scrapes still share one render). See shadowdiff.scrape.
    metrics_min_interval: float = _setting(1.0, _metrics_interval)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """What is written, and what is never written (publish/redact.py says what is hidden by default)."""

    level: str = _setting("info", one_of("debug", "info", "warning", "error"))
    access_log: bool = _setting(False, restart=True)
    max_value_chars: int = _setting(200, positive)
    # Header names whose values are always hidden, besides every name in a key family.
    redact_headers: tuple[str, ...] = _setting(
        ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"), lower_names
    )
    redact_fields: tuple[str, ...] = _setting(())  # key terms added to the built-in families
    redact_keep: tuple[str, ...] = _setting(())  # family terms or whole key names never hidden
    redact_patterns: tuple[str, ...] = _setting((), regexes)  # RE2 patterns hidden wherever they match


@dataclass(frozen=True, slots=True)
class Config:
    listen: ListenConfig = _setting(ListenConfig(), restart=True)
    primary: PrimaryConfig = _setting(PrimaryConfig())
    shadow: ShadowConfig = _setting(ShadowConfig())
    mirror: MirrorConfig = _setting(MirrorConfig())
    compare: CompareConfig = _setting(CompareConfig())
    noise: NoiseConfig = _setting(NoiseConfig())
    store: StoreConfig = _setting(StoreConfig())
    record: RecordConfig = _setting(RecordConfig())
    routes: tuple[str, ...] = _setting((), route_templates)
    admin: AdminConfig = _setting(AdminConfig())
    logging: LoggingConfig = _setting(LoggingConfig())
