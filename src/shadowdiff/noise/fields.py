"""Field statistics: per route and per (part, path, kind), what the verdicts and the admin API need.

Every shadow comparison (`shadow()`) and every A/A comparison (`aa()`) on a route is counted
on that route, and each of its differences at its path: `differences` for the shadow's,
`noise` for the A/A ones. The verdict on a path and kind compares their rates (see
noise.verdict). Within one comparison a (part, path, kind) counts once, so a count is a
number of comparisons, comparable to the route's `compared` and `aa_compared`.

Paths are kept as `stats_path()` gives them: list indices collapse to `[*]`.

Every value the statistics keep (examples, transitions, numeric changes) has passed the
`redact` callable first: the admin API shows what the mismatch log would.

Bounded memory. At most `max_routes` routes, `max_paths_per_route` paths on a route and
`max_fields` paths on all routes together. Past a cap a new route or path is not tracked:
its differences are counted in its route's `untracked` (or in the top-level
`untracked_routes`) and their verdict is `undecided` (a mismatch, never noise). Per path:
`examples` + 1 examples of 200 characters or fewer a value, 10 transitions of 40
characters, 19 numeric buckets. Measured with tracemalloc (tests/noise/test_fields.py,
CPython 3.11): a FieldStats filled to 4,000 paths, each with 3 examples of distinct
200-character values and 10 distinct transitions of 40-character values, holds about
9.4 KB a path (38 MB); with 10-character values, 5.0 KB a path (20 MB). Counts alone (no
string or numeric values) cost under 1.5 KB a path.

`snapshot()` of that full FieldStats takes about 25 ms (up to 60 ms when a full garbage
collection runs during it) and is 10 MB as JSON; `snapshot(values=False)` (counts only,
what the routes view needs) and `snapshot(route=...)` (one route, what the fields view
needs) are a fraction of that.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from shadowdiff.compare.paths import PathError, format_path, parse
from shadowdiff.model import Difference
from shadowdiff.noise import changes
from shadowdiff.noise.merge import HOST_EXAMPLES, merge
from shadowdiff.noise.verdict import UNDECIDED, Thresholds, verdict
from shadowdiff.noise.views import fields_view, routes_view

__all__ = ["FieldStats", "fields_view", "merge", "routes_view", "stats_path"]

OTHER = "other"  # the stats_path of a difference past the caps


@functools.lru_cache(maxsize=8192)
def _collapsed(path: str) -> str:
    try:
        segments = parse(path)
    except PathError:
        return path
    return "$" + "".join("[*]" if isinstance(s, int) else format_path((s,))[1:] for s in segments)  # type: ignore[arg-type]


def stats_path(part: str, path: str) -> str:
    """The path a difference's statistics are kept under.

    Body JSON paths: every array index becomes `[*]` (`$.items[3].price` -> `$.items[*].price`),
    so a list's items share one statistic, which is what a user writes a rule for (rules
    accept `[*]`) and what keeps a 1,000-item list from taking 1,000 paths. The one case
    where it is wrong: positional tuples (`[lat, lon]`, `[x, y, z]`) share one statistic
    for positions that mean different things. Dict keys never collapse. Header names are
    lower-cased; `line N` (text bodies) and `status` are kept as they are.
    """
    if part == "header":
        return path.lower()
    if part == "body" and path.startswith("$") and "[" in path:
        return _collapsed(path)
    return path


class _Field:
    """One (part, stats_path) on one route."""

    __slots__ = (
        "part", "path", "differed", "aa_differed", "differences", "noise", "noise_by_source", "first_seen", "last_seen", "examples", "latest",
        "absolute", "relative", "max_absolute", "non_numeric", "transitions", "transitions_other",
    )  # fmt: skip

    def __init__(self, part: str, path: str, now: float) -> None:
        self.part = part
        self.path = path
        self.differed = 0  # shadow comparisons that differed here, at any kind
        self.aa_differed = 0  # A/A comparisons that differed here, at any kind
        self.differences: dict[str, int] = {}  # kind -> shadow comparisons that differed
        self.noise: dict[str, int] = {}  # kind -> A/A comparisons that differed
        self.noise_by_source: dict[str, dict[str, int]] = {}
        self.first_seen = self.last_seen = now
        self.examples: list[dict[str, Any]] = []
        self.latest: dict[str, Any] | None = None
        self.absolute: list[int] | None = None  # numeric changes per bucket (changes.ABSOLUTE_LABELS)
        self.relative: list[int] | None = None
        self.max_absolute = 0.0
        self.non_numeric = 0  # shadow differences that were not a numeric change
        self.transitions: dict[tuple[Any, Any], int] | None = None
        self.transitions_other = 0

    def example(self, d: Difference, now: float, keep: int) -> None:
        entry = {
            "path": d.path, "kind": d.kind, "seen": now,
            "primary": changes.example_value(d.control), "shadow": changes.example_value(d.candidate),
        }  # fmt: skip
        if len(self.examples) < keep:
            self.examples.append(entry)
        else:
            self.latest = entry

    def change(self, d: Difference) -> None:
        """Summarise one changed value: a numeric move, or a string or flag transition."""
        if d.kind == "changed":
            before, after = changes.number(d.control), changes.number(d.candidate)
            if before is not None and after is not None:
                if self.absolute is None or self.relative is None:
                    self.absolute = [0] * len(changes.ABSOLUTE_LABELS)
                    self.relative = [0] * len(changes.RELATIVE_LABELS)
                absolute, relative, moved = changes.buckets(before, after)
                self.absolute[absolute] += 1
                self.relative[relative] += 1
                self.max_absolute = max(self.max_absolute, float(moved))
                return
            a, b = changes.transition_value(d.control), changes.transition_value(d.candidate)
            if a is not None and b is not None:
                self._transition(a, b)
        self.non_numeric += 1

    def _transition(self, a: str | bool, b: str | bool) -> None:
        if self.transitions is None:
            self.transitions = {}
        key = (type(a).__name__, a, type(b).__name__, b)  # True and 1 never share a key
        if key in self.transitions or len(self.transitions) < changes.MAX_TRANSITIONS:
            self.transitions[key] = self.transitions.get(key, 0) + 1
        else:
            self.transitions_other += 1

    def snapshot(self, values: bool = True) -> dict[str, Any]:
        return {
            "part": self.part,
            "path": self.path,
            "differed": self.differed,
            "aa_differed": self.aa_differed,
            "differences": dict(self.differences),
            "noise": dict(self.noise),
            "noise_by_source": {source: dict(kinds) for source, kinds in self.noise_by_source.items()},
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "examples": [*self.examples, *([self.latest] if self.latest else [])] if values else [],
            "numeric": None
            if self.absolute is None or not values
            else {"absolute": list(self.absolute), "relative": list(self.relative or ()), "max_absolute": self.max_absolute},
            "non_numeric": self.non_numeric,
            "transitions": None
            if self.transitions is None or not values
            else [[k[1], k[3], n] for k, n in self.transitions.items()],
            "transitions_other": self.transitions_other,
        }


class _Route:
    __slots__ = (
        "compared", "aa_compared", "aa_sources", "outcomes", "untracked", "cut", "host_count", "host_examples", "fields",
        "timed", "primary_seconds", "shadow_seconds",
    )  # fmt: skip

    def __init__(self) -> None:
        self.compared = 0
        self.aa_compared = 0
        self.aa_sources: dict[str, list[int]] = {}  # source -> [observations, errors]
        self.outcomes: dict[str, int] = {}
        self.untracked = 0
        self.cut = 0
        self.host_count = 0
        self.host_examples: list[tuple[str, str]] = []
        self.fields: dict[tuple[str, str], _Field] = {}
        self.timed = 0  # shadow answers whose latency is summed below (both sides answered)
        self.primary_seconds = 0.0
        self.shadow_seconds = 0.0

    def snapshot(self, values: bool) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "aa_compared": self.aa_compared,
            "aa_sources": {s: {"observations": o, "errors": e} for s, (o, e) in self.aa_sources.items()},
            "outcomes": dict(self.outcomes),
            "untracked": self.untracked,
            "cut": self.cut,
            "host_explained": {"count": self.host_count, "examples": [list(pair) for pair in self.host_examples]},
            "latency": {"timed": self.timed, "primary_seconds": self.primary_seconds, "shadow_seconds": self.shadow_seconds},
            "fields": [field.snapshot(values) for field in self.fields.values()],
        }


class FieldStats:
    """The statistics of one process (one worker); `merge()` sums several workers' snapshots."""

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        max_fields: int = 4000,
        max_paths_per_route: int = 200,
        max_routes: int = 512,
        examples: int = 2,
        redact: Callable[[Difference], Difference] = lambda d: d,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.thresholds = thresholds  # replaced on a live config change
        self.max_fields = max_fields
        self.max_paths_per_route = max_paths_per_route
        self.max_routes = max_routes
        self.examples = examples
        self._redact = redact
        self._clock = clock
        self._routes: dict[str, _Route] = {}
        self._fields = 0
        self._untracked_routes = 0  # shadow comparisons on routes past max_routes
        self._untracked_routes_aa = 0  # A/A comparisons on routes past max_routes
        self._touched: set[str] = set()  # routes counted in since the last take_touched()

    def take_touched(self) -> set[str]:
        """The routes something was counted on since the last call (what the store must write)."""
        touched, self._touched = self._touched, set()
        return touched

    def _route(self, name: str) -> _Route | None:
        route = self._routes.get(name)
        if route is None and len(self._routes) < self.max_routes:
            route = self._routes[name] = _Route()
        if route is not None:
            self._touched.add(name)
        return route

    def _field(self, route: _Route, part: str, path: str, now: float) -> _Field | None:
        field = route.fields.get((part, path))
        if field is None and len(route.fields) < self.max_paths_per_route and self._fields < self.max_fields:
            field = route.fields[(part, path)] = _Field(part, path, now)
            self._fields += 1
        return field

    def aa(self, route: str, source: str, differences: Sequence[Difference] | None) -> None:
        """One A/A comparison on `route` from `source` (one of AA_LANES): its differences (empty:
        the primary agreed with itself); None: no usable A/A answer (counted per source as an
        error, not an observation)."""
        stats = self._route(route)
        if stats is None:
            self._untracked_routes_aa += 1
            return
        counts = stats.aa_sources.setdefault(source, [0, 0])
        if differences is None:
            counts[1] += 1
            return
        counts[0] += 1
        stats.aa_compared += 1
        now = self._clock()
        seen: set[tuple[str, str, str]] = set()
        fields_seen: set[tuple[str, str]] = set()
        for raw in differences:
            d = self._redact(raw)
            path = stats_path(d.part, d.path)
            if (d.part, path, d.kind) in seen:
                continue
            seen.add((d.part, path, d.kind))
            field = self._field(stats, d.part, path, now)
            if field is None:
                continue  # A/A evidence past the caps: nothing to explain there anyway
            if (d.part, path) not in fields_seen:
                fields_seen.add((d.part, path))
                field.aa_differed += 1
            field.noise[d.kind] = field.noise.get(d.kind, 0) + 1
            by_source = field.noise_by_source.setdefault(source, {})
            by_source[d.kind] = by_source.get(d.kind, 0) + 1
            field.last_seen = now

    def shadow(self, route: str, differences: Sequence[Difference]) -> tuple[tuple[str, str], ...]:
        """Count one shadow comparison that was made (not a shadow_error) on `route`, with every
        difference it found, and return (stats_path, verdict) for each difference, in order
        (the verdict after counting this comparison in). Paths past the caps are not tracked:
        verdict UNDECIDED, stats_path "other"."""
        stats = self._route(route)
        if stats is None:
            self._untracked_routes += 1
            return tuple((OTHER, UNDECIDED) for _ in differences)
        stats.compared += 1
        now = self._clock()
        seen: set[tuple[str, str, str]] = set()
        fields_seen: set[tuple[str, str]] = set()
        placed: list[tuple[str, _Field, str] | None] = []
        for raw in differences:
            d = self._redact(raw)
            path = stats_path(d.part, d.path)
            field = self._field(stats, d.part, path, now)
            key = (d.part, path, d.kind)
            first = key not in seen
            seen.add(key)
            if field is None:
                stats.untracked += first
                placed.append(None)
                continue
            if (d.part, path) not in fields_seen:
                fields_seen.add((d.part, path))
                field.differed += 1
            if first:
                field.differences[d.kind] = field.differences.get(d.kind, 0) + 1
                field.last_seen = now
                field.example(d, now, self.examples)
            field.change(d)
            placed.append((path, field, d.kind))
        return tuple(self._verdict(stats, entry) for entry in placed)

    def _verdict(self, stats: _Route, entry: tuple[str, _Field, str] | None) -> tuple[str, str]:
        if entry is None:
            return OTHER, UNDECIDED
        path, field, kind = entry
        found = verdict(field.differences.get(kind, 0), stats.compared, field.noise.get(kind, 0), stats.aa_compared, self.thresholds)
        return path, found

    def outcome(
        self,
        route: str,
        outcome: str,
        *,
        cut: bool = False,
        host_explained: Sequence[tuple[str, str]] = (),
        latency: tuple[float, float] | None = None,
    ) -> None:
        """The comparison's final outcome (match, mismatch, ignored, noise, shadow_error) for the
        routes view; `cut`: the engine stopped listing its differences (counted per route);
        `host_explained`: (part, path) pairs the Host policy explained (counted per route, with
        up to 10 example paths); `latency`: (primary, shadow) seconds, when both answered."""
        stats = self._route(route)
        if stats is None:
            return
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        if latency is not None:
            stats.timed += 1
            stats.primary_seconds += latency[0]
            stats.shadow_seconds += latency[1]
        stats.cut += cut
        stats.host_count += len(host_explained)
        for part, path in host_explained:
            if len(stats.host_examples) >= HOST_EXAMPLES:
                break
            if (part, path) not in stats.host_examples:
                stats.host_examples.append((part, path))

    def snapshot(self, *, route: str | None = None, values: bool = True) -> dict[str, Any]:
        """Every count as plain JSON-able data (orjson), including the thresholds; cheap enough to
        take on the event loop at the caps (about 25 ms at 4,000 paths with full examples: see
        the module docstring). `route`: that route alone (none if unseen); `values=False`:
        counts only, no examples, numeric changes or transitions."""
        t = self.thresholds
        routes_ = self._routes if route is None else {route: self._routes[route]} if route in self._routes else {}
        return {
            "thresholds": {"relative": t.relative, "absolute": t.absolute, "min_observations": t.min_observations},
            "caps": {
                "max_fields": self.max_fields, "max_paths_per_route": self.max_paths_per_route,
                "max_routes": self.max_routes, "examples": self.examples,
            },  # fmt: skip
            "untracked_routes": self._untracked_routes,
            "untracked_routes_aa": self._untracked_routes_aa,
            "routes": {name: stats.snapshot(values) for name, stats in routes_.items()},
        }
