"""The rows of the UI's tables, shaped from the API's views: rates worked out once, the routes
in the order asked for (worst first unless told otherwise), a route's fields split into what
the shadow changed and what the primary changes by itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

NOISE = "noise"


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class RouteRow:
    route: str
    compared: int
    mismatch: int
    noise: int
    ignored: int
    shadow_error: int
    mismatch_rate: float | None  # mismatches over comparisons: noise outcomes are not mismatches
    noise_rate: float | None
    primary_ms: float | None
    shadow_ms: float | None
    regression: int  # fields by verdict
    undecided: int
    noise_fields: int
    trend: tuple[float | None, ...]  # mismatch rate per step, oldest first (empty: no history)


# sort key -> (value of a row, descending by default)
SORTS: dict[str, tuple[Callable[[RouteRow], Any], bool]] = {
    "route": (lambda r: r.route, False),
    "compared": (lambda r: r.compared, True),
    "mismatch": (lambda r: r.mismatch_rate, True),
    "noise": (lambda r: r.noise_rate, True),
    "ignored": (lambda r: r.ignored, True),
    "errors": (lambda r: r.shadow_error, True),
    "primary": (lambda r: r.primary_ms, True),
    "shadow": (lambda r: r.shadow_ms, True),
    "fields": (lambda r: (r.regression, r.undecided), True),
}
DEFAULT_SORT = "mismatch"


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _trends(routes: Sequence[Mapping[str, Any]], step: int) -> dict[str, tuple[float | None, ...]]:
    """Each route's mismatch rate per step on one time axis shared by all routes (the store's
    trend lists only the steps a route had rows in)."""
    times = [_instant(point["t"]) for row in routes for point in row.get("trend", ())]
    if not times:
        return {}
    start, steps = min(times), int((max(times) - min(times)) // step) + 1
    out = {}
    for row in routes:
        series: list[float | None] = [None] * steps
        for point in row.get("trend", ()):
            slot = int((_instant(point["t"]) - start) // step)
            if 0 <= slot < steps:
                series[slot] = rate(point["mismatch"], point["compared"])
        out[row["route"]] = tuple(series)
    return out


def route_rows(view: Mapping[str, Any]) -> list[RouteRow]:
    """The routes view (GET /api/v1/routes) as table rows, in the view's order."""
    trends = _trends(view["routes"], int(view.get("trend_step") or 60))
    rows = []
    for row in view["routes"]:
        c, compared = row["comparisons"], row["compared"]
        rows.append(
            RouteRow(
                route=row["route"], compared=compared, mismatch=c.get("mismatch", 0),
                noise=c.get("noise", 0), ignored=c.get("ignored", 0), shadow_error=c.get("shadow_error", 0),
                mismatch_rate=rate(c.get("mismatch", 0), compared), noise_rate=rate(c.get("noise", 0), compared),
                primary_ms=row["latency"]["primary_ms"], shadow_ms=row["latency"]["shadow_ms"],
                regression=row["verdicts"]["regression"], undecided=row["verdicts"]["undecided"],
                noise_fields=row["verdicts"]["noise"], trend=trends.get(row["route"], ()),
            )
        )  # fmt: skip
    return rows


def ordered(rows: Sequence[RouteRow], key: str, descending: bool) -> list[RouteRow]:
    """The rows by `key` (one of SORTS); ties, and the default, worst first: the highest mismatch
    rate, then the most comparisons, then by name. Rows without a value (no latency yet) go last."""
    value = SORTS[key][0]
    out = sorted(rows, key=lambda r: r.route)
    out.sort(key=lambda r: (r.mismatch_rate or 0.0, r.compared), reverse=True)
    present = [r for r in out if value(r) is not None]
    present.sort(key=value, reverse=descending)
    return present + [r for r in out if value(r) is None]


def split_fields(fields: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """A route's field rows: (regressions and undecided ones, noise), each in the view's order."""
    changed = [row for row in fields if row["verdict"] != NOISE]
    noise = [row for row in fields if row["verdict"] == NOISE]
    return changed, noise
