"""Rules compiled for one route: what to ignore, mask, tolerate, or compare unordered.

`Rules.for_route(route)` returns the RuleSet of the rules whose `routes` include the
route (or that name none), compiled once per route. A RuleSet is plain frozen data,
so it can be sent to a worker process with the bodies it applies to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from shadowdiff.compare import numbers, paths
from shadowdiff.compare.paths import Pattern
from shadowdiff.compare.patterns import UserPattern

MASKED = "<masked>"


class RuleSpec(Protocol):
    """One configured rule, as the config's `RuleConfig` holds it (validated there)."""

    kind: str
    path: str | None
    pattern: str | None
    header: str | None
    absolute: float | None
    relative: float | None
    routes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mask:
    regex: UserPattern  # RE2: linear time whatever the pattern (compare.patterns)
    where: Pattern | None  # None: every string in the body


@dataclass(frozen=True, slots=True)
class Tolerance:
    absolute: float
    relative: float
    where: Pattern | None  # None: every number in the body

    def allows(self, a: float | Decimal, b: float | Decimal) -> bool:
        """Within max(absolute, relative * |larger|), exactly for numbers of any size."""
        return numbers.within(a, b, self.absolute, self.relative)


@dataclass(frozen=True, slots=True)
class RuleSet:
    ignore: tuple[Pattern, ...] = ()
    unordered: tuple[Pattern, ...] = ()
    masks: tuple[Mask, ...] = ()
    tolerances: tuple[Tolerance, ...] = ()
    ignore_headers: frozenset[str] = frozenset()

    def tolerance_for(self, path: Sequence[str | int]) -> Tolerance | None:
        for tolerance in self.tolerances:
            if tolerance.where is None or paths.matches(tolerance.where, path):
                return tolerance
        return None


EMPTY = RuleSet()


def compile_rules(configs: Sequence[RuleSpec]) -> RuleSet:
    ignore, unordered, masks, tolerances, headers = [], [], [], [], set()
    for rule in configs:
        where = paths.parse(rule.path) if rule.path is not None else None
        if rule.kind == "ignore":
            ignore.append(where)
        elif rule.kind == "unordered":
            unordered.append(where)
        elif rule.kind == "mask":
            masks.append(Mask(UserPattern(rule.pattern or ""), where))
        elif rule.kind == "tolerance":
            tolerances.append(Tolerance(rule.absolute or 0.0, rule.relative or 0.0, where))
        elif rule.kind == "ignore_header":
            headers.add((rule.header or "").lower())
    # A tolerance for a path wins over a body-wide one, whatever their order in the file.
    tolerances.sort(key=lambda t: t.where is None)
    return RuleSet(tuple(ignore), tuple(unordered), tuple(masks), tuple(tolerances), frozenset(headers))


class Rules:
    """All configured rules; compiled per route on first use."""

    def __init__(self, configs: Sequence[RuleSpec]) -> None:
        self._configs = tuple(configs)
        self._by_route: dict[str, RuleSet] = {}

    def for_route(self, route: str) -> RuleSet:
        ruleset = self._by_route.get(route)
        if ruleset is None:
            applicable = [rule for rule in self._configs if not rule.routes or route in rule.routes]
            ruleset = compile_rules(applicable) if applicable else EMPTY
            self._by_route[route] = ruleset  # bounded: routes are capped by RouteTable
        return ruleset
