"""The live part of the config, as one snapshot the request path reads.

A `Runtime` is built from a Config with everything derived from it that a request
needs: the mirror policy, the route table, the compiled rules. (Settings held by
long-lived parts, such as upstream timeouts and the comparator's limits, are handed
to them by `ShadowDiff.apply()`.)
`RuntimeHolder.current` is read once per request, so a request sees one snapshot
from start to end; `swap()` replaces it atomically (one attribute store on the
event loop). Caches are rebuilt with their inputs only: the route table, and the
routes it has seen, survive a swap that leaves `routes` unchanged, and so do the
compiled rules when `compare.rules` is the same.

Which keys may change live and which need a restart: `config.live`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadowdiff.compare.rules import Rules
from shadowdiff.config import Config
from shadowdiff.config.live import restart_changes
from shadowdiff.experiment.policy import MirrorPolicy
from shadowdiff.routing import RouteTable


class RestartRequired(ValueError):
    """A new config changes keys a running proxy cannot take; `keys` names them."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__("needs a restart to change: " + ", ".join(keys))
        self.keys = keys


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    policy: MirrorPolicy
    routes: RouteTable
    rules: Rules

    @classmethod
    def build(cls, config: Config, previous: Runtime | None = None) -> Runtime:
        """A snapshot of `config`, reusing `previous`'s caches where their inputs did not change."""
        old = previous.config if previous is not None else None
        routes = previous.routes if old is not None and old.routes == config.routes else RouteTable(config.routes)
        same_rules = old is not None and old.compare.rules == config.compare.rules
        rules = previous.rules if same_rules else Rules(config.compare.rules)  # type: ignore[union-attr]
        return cls(config, MirrorPolicy(config.mirror), routes, rules)


class RuntimeHolder:
    """Holds the current Runtime; `swap()` puts a new one in place."""

    def __init__(self, config: Config) -> None:
        self.current = Runtime.build(config)

    def swap(self, config: Config) -> Runtime:
        """Make `config` current. Raises RestartRequired (and changes nothing) if it
        differs from the current one in keys that need a restart."""
        keys = restart_changes(self.current.config, config)
        if keys:
            raise RestartRequired(keys)
        self.current = Runtime.build(config, self.current)
        return self.current
