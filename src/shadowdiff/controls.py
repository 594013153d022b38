"""Runtime controls: the kill switch, the live sample rate, noise re-asks, and config reload.

A `Controls` holds the config as read from its file (`base`) and the operator's live
settings on top of it (`Overrides`: mirroring paused or on, `mirror.sample_rate`,
`noise.reask_rate`); what the proxy runs with is `effective()`, handed to `apply` (one
process's `ShadowDiff.apply`, or the supervisor's `update`, which reaches every worker
within a loop turn). Overrides live in memory: a restart forgets them, and a reload of the
file keeps them (an incident's pause must not be undone by a reload; `resume` lifts it).
To keep a setting, write it to the config file.

`reload()` reads the file again (the same path and command-line flags `serve` started
with), validates it whole and applies it with the overrides on top: a bad file changes
nothing (ConfigError, key paths named), nor does one that changes keys that need a restart
(RestartRequired, the keys named).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from shadowdiff import log
from shadowdiff.config import Config, ConfigError
from shadowdiff.config.live import restart_changes
from shadowdiff.runtime import RestartRequired

ON, PAUSED = "on", "paused"
SETTINGS = ("mirroring", "sample_rate", "reask_rate")


class ControlError(ValueError):
    """A change that cannot be made as asked (a 400, with what to send instead)."""


@dataclass(frozen=True, slots=True)
class Overrides:
    paused: bool | None = None  # True while the kill switch is pulled; None: the file's mirror.enabled
    sample_rate: float | None = None
    reask_rate: float | None = None

    def names(self) -> list[str]:
        """The settings overridden, by their API names."""
        pairs = (("mirroring", self.paused), ("sample_rate", self.sample_rate), ("reask_rate", self.reask_rate))
        return [name for name, value in pairs if value is not None]


def effective(base: Config, overrides: Overrides) -> Config:
    mirror, noise = base.mirror, base.noise
    if overrides.paused:
        mirror = replace(mirror, enabled=False)
    if overrides.sample_rate is not None:
        mirror = replace(mirror, sample_rate=overrides.sample_rate)
    if overrides.reask_rate is not None:
        noise = replace(noise, reask_rate=overrides.reask_rate)
    return replace(base, mirror=mirror, noise=noise)


def settings(config: Config) -> dict[str, Any]:
    return {
        "mirroring": ON if config.mirror.enabled else PAUSED,
        "sample_rate": config.mirror.sample_rate,
        "reask_rate": config.noise.reask_rate,
    }


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ControlError(f"{name} must be a number from 0 to 1, got {str(value)[:40]!r}")
    return float(value)


class Controls:
    def __init__(
        self,
        base: Config,
        apply: Callable[[Config], Awaitable[None]],
        *,
        load: Callable[[], Config] | None = None,
    ) -> None:
        self.base = base
        self.overrides = Overrides()
        self._apply = apply
        self._load = load  # reads the file again; None: this proxy was started without one
        # One change or reload at a time: each builds on the settings the last one left, and
        # applying (to the workers) yields to the loop.
        self._lock = asyncio.Lock()
        self._signalled: set[asyncio.Task[None]] = set()  # SIGHUP reloads under way (kept referenced)

    @property
    def current(self) -> Config:
        return effective(self.base, self.overrides)

    def state(self) -> dict[str, Any]:
        return {
            **settings(self.current),
            "overridden": self.overrides.names(),
            "config": settings(self.base),
            "note": "live settings are lost on restart; write them to the config file to keep them",
        }

    async def change(self, asked: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply `asked` ({"mirroring": "paused"|"on", "sample_rate": R, "reask_rate": R}, any of
        them; a rate of null goes back to the file's, and so does "on"); (before, after)
        settings. ControlError for anything else, and for "on" when the file turns mirroring off."""
        if not isinstance(asked, dict) or not asked:
            raise ControlError('send a JSON object of the settings to change, e.g. {"mirroring": "paused"} or {"sample_rate": 0.1}')
        async with self._lock:
            return await self._change(asked)

    async def _change(self, asked: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        unknown = sorted(set(asked) - set(SETTINGS))
        if unknown:
            raise ControlError(f"unknown setting {unknown[0][:40]!r}: the settings are {', '.join(SETTINGS)}")
        overrides = self.overrides
        if "mirroring" in asked:
            if asked["mirroring"] not in (ON, PAUSED):
                raise ControlError(f'mirroring must be "on" or "paused", got {str(asked["mirroring"])[:40]!r}')
            if asked["mirroring"] == ON and not self.base.mirror.enabled:
                raise ControlError("the config file turns mirroring off (mirror.enabled: false): edit it and reload")
            overrides = replace(overrides, paused=True if asked["mirroring"] == PAUSED else None)  # on: the file's again
        for name in ("sample_rate", "reask_rate"):  # null: back to the file's value
            if name in asked:
                value = asked[name]
                overrides = replace(overrides, **{name: None if value is None else _fraction(name, value)})
        before = settings(self.current)
        config = effective(self.base, overrides)
        await self._apply(config)
        self.overrides = overrides
        return before, settings(config)

    async def reload(self) -> list[str]:
        """Read the file again and serve with it (overrides kept); the key paths that changed.
        ConfigError (a bad file) or RestartRequired (keys that need a restart) change nothing."""
        if self._load is None:
            raise ControlError("this proxy was started without --config: there is no file to read again")
        async with self._lock:
            return await self._reload(self._load)

    async def _reload(self, load: Callable[[], Config]) -> list[str]:
        base = await asyncio.to_thread(load)  # a file read and its validation: off the loop
        keys = restart_changes(self.base, base)
        if keys:
            raise RestartRequired(keys)
        changed = _changed(self.base, base)
        config = effective(base, self.overrides)
        await self._apply(config)
        self.base = base
        return changed


def _changed(old: Any, new: Any, path: str = "") -> list[str]:
    """The key paths whose values differ between two configs (sections walked)."""
    fields = getattr(old, "__dataclass_fields__", None)
    if fields is None or type(old).__name__ == "HostPort":
        return [path] if old != new else []
    out: list[str] = []
    for name in fields:
        out.extend(_changed(getattr(old, name), getattr(new, name), f"{path}.{name}" if path else name))
    return out


def audit_line(token: str | None, source: str | None, what: str, before: Any, after: Any, result: str) -> None:
    """One `audit` log line: a change asked for, made or refused (never the token itself)."""
    log.event(
        "info" if result == "accepted" else "warning", "audit",
        token=token, source=source, what=what, before=before, after=after, result=result,
    )  # fmt: skip


def on_sighup(controls: Controls) -> None:
    """A SIGHUP handler's body: the same reload as POST /api/v1/reload, in a task kept until it ends."""
    task = asyncio.ensure_future(reload_audited(controls, None, "SIGHUP"))
    controls._signalled.add(task)
    task.add_done_callback(controls._signalled.discard)


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload did: the keys changed, or (`changed` None) why it changed nothing."""

    changed: list[str] | None
    refusal: str = ""  # one line: the problems, the restart keys, or no file
    problems: tuple[str, ...] = ()  # a bad file's key paths
    keys: tuple[str, ...] = ()  # keys that need a restart


async def reload_audited(controls: Controls, token: str | None, source: str | None) -> Reloaded:
    """A reload (API or SIGHUP), said in the log and the audit trail, made or refused."""
    current = settings(controls.current)
    try:
        changed = await controls.reload()
    except ConfigError as exc:
        result = Reloaded(None, "; ".join(exc.problems)[:500], problems=tuple(exc.problems))
    except RestartRequired as exc:
        result = Reloaded(None, str(exc), keys=tuple(exc.keys))
    except ControlError as exc:
        result = Reloaded(None, str(exc))
    else:
        log.event("info", "config_reloaded", changed=changed)
        audit_line(token, source, "reload", current, settings(controls.current), "accepted")
        return Reloaded(changed)
    if result.problems:
        log.event("error", "config_reload_refused", problems=list(result.problems), note="nothing changed")
    else:
        log.event("error", "config_reload_refused", error=result.refusal, note="nothing changed")
    audit_line(token, source, "reload", current, current, f"refused: {result.refusal}")
    return result
