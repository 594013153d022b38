"""Loading a config: YAML -> validated sections, every problem named by its key path;
and showing one (check-config), secrets masked.

`load()` walks the raw mapping against the section dataclasses and collects *every*
problem as `key.path: message` before raising `ConfigError`, so a user fixes a file
in one pass. CLI flags are applied to the raw mapping before validation, so a bad
flag is reported under the key it overrides (`--primary` -> `primary.url`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

from shadowdiff.config.checks import SECRET_MASK, bound_problem, mask_credentials
from shadowdiff.config.schema import Config, ConfigError, HostPort

# -- loading ---------------------------------------------------------------------


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *, proxy: bool = True) -> Config:
    """Read `path` (or nothing), apply dotted `overrides`, validate, return a Config.

    Raises ConfigError listing every problem by key path. `proxy=False` (`shadowdiff ui`, which
    proxies nothing) does not require the upstreams' URLs.
    """
    raw = read(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return from_mapping(raw, proxy=proxy)


def read(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML file, not yet validated; ConfigError when it is no such file."""
    try:
        raw: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
    except yaml.YAMLError as exc:  # its message quotes the line: a URL's password too
        raise ConfigError([f"{path}: not valid YAML: {mask_credentials(str(exc))}"]) from exc
    except ValueError as exc:  # PyYAML's int() on a number of more than 4300 digits
        raise ConfigError([f"{path}: a number of more than 4300 digits: no setting takes one"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(raw).__name__}"])
    return raw


def from_mapping(raw: Mapping[str, Any], *, proxy: bool = True) -> Config:
    """Validate an already-parsed mapping into a Config (see `load`)."""
    problems: list[str] = []
    config = _build(Config, raw, "", problems)
    if not problems:
        problems.extend(_cross_checks(config, proxy))
    if problems:
        raise ConfigError(problems)
    return config


def _cross_checks(config: Config, proxy: bool) -> list[str]:
    problems = []
    if proxy and not config.primary.url:
        problems.append("primary.url: required (the service whose answers clients get)")
    if proxy and config.mirror.enabled and not config.shadow.url:
        problems.append("shadow.url: required while mirror.enabled is true")
    if config.listen.address == config.admin.listen and config.listen.address.port != 0:
        problems.append(f"admin.listen: must differ from listen.address, both are {config.admin.listen}")
    admin = config.admin
    names = [token.name for token in admin.tokens]
    for i, token in enumerate(admin.tokens):
        if bool(token.token_file) == bool(token.token_env):
            problems.append(f"admin.tokens[{i}]: give the token by token_file or token_env (one of them; never inline)")
        if names.count(token.name) > 1:
            problems.append(f"admin.tokens[{i}].name: {token.name!r} is used twice")
    if not admin.tokens and not admin.allow_open and not _loopback(admin.listen.host):
        problems.append(
            f"admin.listen: {admin.listen} is not a loopback address and admin.tokens is empty: anyone who reaches"
            " it could read the store and pause mirroring; add admin.tokens, or set admin.allow_open: true"
        )
    return problems


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        secret = spec.metadata.get("secret", False)
        first = len(problems)
        value = _convert(hints[name], raw[name], where, problems, secret=secret)
        if value is not _INVALID:
            check = spec.metadata.get("check")
            message = bound_problem(name, value) or (check(value) if check and value is not None else None)
            if message:
                # a check may return several messages; one that names an item ("[2]: ...") is at the item's path
                for text in [message] if isinstance(message, str) else message:
                    problems.append(f"{where}{text}" if text.startswith("[") else f"{where}: {text}")
            else:
                values[name] = value
        if secret:  # whatever went wrong, a secret's value is never printed
            problems[first:] = [mask_credentials(problem) for problem in problems[first:]]
    built = cls(**values)
    check_whole = getattr(built, "problems", None)
    if check_whole is not None and len(problems) == before:
        problems.extend(f"{path}.{problem}" for problem in check_whole())
    return built


_INVALID = object()


def _convert(hint: Any, value: Any, where: str, problems: list[str], *, secret: bool = False) -> Any:
    def bad(expected: str) -> object:
        got = type(value).__name__ if secret and value is not None else _kind(value)
        problems.append(f"{where}: must be {expected}, got {got}")
        return _INVALID

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(inner[0], value, where, problems, secret=secret)
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
            try:
                return float(value)
            except OverflowError:  # an integer past a double's range
                return bad("a finite number")
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
    try:
        url = URL(value)
    except ValueError:  # not even a URL: mask by shape
        return mask_credentials(value)
    if url.user is None and url.password is None:
        return value
    return str(url.with_user(SECRET_MASK).with_password(None))


def dump(config: Config) -> str:
    return yaml.safe_dump(to_mapping(config), sort_keys=False, default_flow_style=False)
