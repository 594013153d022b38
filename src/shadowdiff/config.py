"""Configuration: frozen, typed sections loaded from YAML and validated by key path.

Every section is a frozen dataclass whose fields carry their own check. `load()`
walks the raw mapping against those dataclasses and collects *every* problem as
`key.path: message` before raising `ConfigError`, so a user fixes a file in one pass.
CLI flags are applied to the raw mapping before validation, so a bad flag is
reported under the key it overrides (`--primary` -> `primary.url`).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

MiB = 1024 * 1024
SECRET_MASK = "**********"


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
    return f"templates must start with '/', got {bad}" if bad else None


def _json_path(value: str) -> str | None:
    from shadowdiff.compare.paths import PathError, parse

    try:
        parse(value)
    except PathError as exc:
        return str(exc)
    return None


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


def _lower_names(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if _header_name(v)]
    return f"must be header names, got {bad}" if bad else None


def _setting(default: Any, check: Callable[[Any], str | None] | None = None, *, secret: bool = False) -> Any:
    """A config field: its default, an optional check, and whether to mask it."""
    meta = {"check": check, "secret": secret}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


# -- the sections ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenConfig:
    address: HostPort = _setting(HostPort("0.0.0.0", 8080))
    max_request_body_bytes: int = _setting(10 * MiB, _non_negative)
    max_connections: int = _setting(1024, _positive)
    idle_timeout: float = _setting(75.0, _positive)
    request_timeout: float = _setting(60.0, _positive)
    shutdown_timeout: float = _setting(15.0, _non_negative)
    workers: int = _setting(1, _positive)  # processes sharing the port (SO_REUSEPORT); bounds apply per process


@dataclass(frozen=True, slots=True)
class PrimaryConfig:
    url: str = _setting("", _upstream_url, secret=True)
    timeout: float = _setting(30.0, _positive)
    connect_timeout: float = _setting(5.0, _positive)
    max_connections: int = _setting(1000, _positive)


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    url: str = _setting("", _upstream_url, secret=True)
    timeout: float = _setting(5.0, _positive)
    connect_timeout: float = _setting(1.0, _positive)
    host_header: str = _setting("own", _one_of("own", "client"))


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    enabled: bool = _setting(True)
    sample_rate: float = _setting(1.0, _fraction)
    sample_key: str | None = _setting(None, _header_name)
    methods: tuple[str, ...] = _setting(("GET", "HEAD", "OPTIONS"), _http_methods)
    include_paths: tuple[str, ...] = _setting(())
    exclude_paths: tuple[str, ...] = _setting(())
    max_in_flight: int = _setting(100, _positive)
    max_body_bytes: int = _setting(1 * MiB, _non_negative)
    marker_header: str = _setting("X-Shadow-Request", _header_name)
    marker_value: str = _setting("true")
    drain_timeout: float = _setting(5.0, _non_negative)
    breaker_failures: int = _setting(20, _non_negative)
    breaker_cooldown: float = _setting(5.0, _positive)


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
    timeout: float = _setting(10.0, _positive)
    rules: tuple[RuleConfig, ...] = _setting(())


@dataclass(frozen=True, slots=True)
class AdminConfig:
    listen: HostPort = _setting(HostPort("127.0.0.1", 9901))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = _setting("info", _one_of("debug", "info", "warning", "error"))
    access_log: bool = _setting(False)
    max_value_chars: int = _setting(200, _positive)
    redact_headers: tuple[str, ...] = _setting(
        ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"), _lower_names
    )
    redact_fields: tuple[str, ...] = _setting(
        ("password", "secret", "token", "access_token", "refresh_token", "api_key", "client_secret")
    )


@dataclass(frozen=True, slots=True)
class Config:
    listen: ListenConfig = _setting(ListenConfig())
    primary: PrimaryConfig = _setting(PrimaryConfig())
    shadow: ShadowConfig = _setting(ShadowConfig())
    mirror: MirrorConfig = _setting(MirrorConfig())
    compare: CompareConfig = _setting(CompareConfig())
    routes: tuple[str, ...] = _setting((), _route_templates)
    admin: AdminConfig = _setting(AdminConfig())
    logging: LoggingConfig = _setting(LoggingConfig())


# -- loading ---------------------------------------------------------------------


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read `path` (or nothing), apply dotted `overrides`, validate, return a Config.

    Raises ConfigError listing every problem by key path.
    """
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([f"{path}: not valid YAML: {exc}"]) from exc
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(raw).__name__}"])
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return from_mapping(raw)


def from_mapping(raw: Mapping[str, Any]) -> Config:
    """Validate an already-parsed mapping into a Config (see `load`)."""
    problems: list[str] = []
    config = _build(Config, raw, "", problems)
    if not problems:
        problems.extend(_cross_checks(config))
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(config: Config) -> list[str]:
    problems = []
    if not config.primary.url:
        problems.append("primary.url: required (the service whose answers clients get)")
    if config.mirror.enabled and not config.shadow.url:
        problems.append("shadow.url: required while mirror.enabled is true")
    if config.listen.address == config.admin.listen and config.listen.address.port != 0:
        problems.append(f"admin.listen: must differ from listen.address, both are {config.admin.listen}")
    return problems


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for name in parents:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{path or '(top level)'}: must be a mapping, got {_kind(raw)}")
        return cls()
    before = len(problems)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            problems.append(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    values = {}
    for name, spec in known.items():
        if name not in raw:
            continue
        where = f"{path}.{name}" if path else name
        value = _convert(hints[name], raw[name], where, problems)
        if value is _INVALID:
            continue
        check = spec.metadata.get("check")
        message = check(value) if check and value is not None else None
        if message:
            problems.append(f"{where}: {message}")
            continue
        values[name] = value
    built = cls(**values)
    check_whole = getattr(built, "problems", None)
    if check_whole is not None and len(problems) == before:
        problems.extend(f"{path}.{problem}" for problem in check_whole())
    return built


_INVALID = object()


def _convert(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    def bad(expected: str) -> object:
        problems.append(f"{where}: must be {expected}, got {_kind(value)}")
        return _INVALID

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(inner[0], value, where, problems)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            if not isinstance(value, list):
                return bad("a list")
            return tuple(_build(item, v, f"{where}[{i}]", problems) for i, v in enumerate(value))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return bad("a list of strings")
        return tuple(value)
    if hint is bool:
        return value if isinstance(value, bool) else bad("true or false")
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else bad("a whole number")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return bad("a number")
    if hint is str:
        return value if isinstance(value, str) else bad("a string")
    if hint is HostPort:
        if not isinstance(value, str):
            return bad("a HOST:PORT string")
        try:
            return HostPort.parse(value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return _INVALID
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, problems)
    raise TypeError(f"no conversion for {hint!r} at {where}")  # a programming error


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (str, int, float, bool)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


# -- showing ---------------------------------------------------------------------


def to_mapping(config: Any, *, mask_secrets: bool = True, drop_unset: bool = False) -> Any:
    """The effective config as plain data, secrets masked (for check-config).

    Items of lists (rules) leave out the keys they do not set.
    """
    if not dataclasses.is_dataclass(config):
        if isinstance(config, tuple):
            return [to_mapping(item, mask_secrets=mask_secrets, drop_unset=True) for item in config]
        return config
    out = {}
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if drop_unset and value in (None, ()):
            continue
        if isinstance(value, HostPort):
            out[spec.name] = str(value)
        elif mask_secrets and spec.metadata.get("secret") and isinstance(value, str):
            out[spec.name] = mask_url(value)
        else:
            out[spec.name] = to_mapping(value, mask_secrets=mask_secrets)
    return out


def mask_url(value: str) -> str:
    """An upstream URL with any credentials in it replaced by the mask."""
    url = URL(value)
    if url.user is None and url.password is None:
        return value
    return str(url.with_user(SECRET_MASK).with_password(None))


def dump(config: Config) -> str:
    return yaml.safe_dump(to_mapping(config), sort_keys=False, default_flow_style=False)
