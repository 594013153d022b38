"""The sum of several workers' field statistics snapshots (`serve --workers N`).

Counts add; first_seen is the earliest, last_seen the latest; examples are the earliest
ones plus the latest one, as one FieldStats keeps them; transitions add by (primary,
shadow) and the most frequent MAX_TRANSITIONS stay, the rest join "other"; the thresholds
and caps are the first snapshot's (every worker runs the same config).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowdiff.noise import changes
from shadowdiff.noise.verdict import Thresholds

HOST_EXAMPLES = 10
ROUTE_COUNTS = ("compared", "aa_compared", "untracked", "cut")  # a route's counts that add up
FIELD_COUNTS = ("differed", "aa_differed", "non_numeric", "transitions_other")  # and a field's


def empty() -> dict[str, Any]:
    """A snapshot with nothing counted, under the default thresholds."""
    t = Thresholds()
    return {
        "thresholds": {"relative": t.relative, "absolute": t.absolute, "min_observations": t.min_observations},
        "caps": {},
        "untracked_routes": 0,
        "untracked_routes_aa": 0,
        "routes": {},
    }


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The sum of several workers' snapshots (counts add; first/last seen min/max; examples and
    transitions merged under their caps; thresholds from the first). `serve --workers N`: the
    supervisor's API shows the sum, as /metrics does."""
    out = empty()
    first = True
    for snapshot in snapshots:
        if first:
            out["thresholds"] = dict(snapshot["thresholds"])
            out["caps"] = dict(snapshot.get("caps", {}))
            first = False
        out["untracked_routes"] += snapshot.get("untracked_routes", 0)
        out["untracked_routes_aa"] += snapshot.get("untracked_routes_aa", 0)
        keep = out["caps"].get("examples", 2)
        for name, route in snapshot["routes"].items():
            if name in out["routes"]:
                add_route(out["routes"][name], route, keep)
            else:
                out["routes"][name] = add_route(empty_route(), route, keep)
    return out


def empty_route() -> dict[str, Any]:
    return {
        "compared": 0, "aa_compared": 0, "aa_sources": {}, "outcomes": {}, "untracked": 0, "cut": 0,
        "host_explained": {"count": 0, "examples": []}, "fields": [],
        "latency": {"timed": 0, "primary_seconds": 0.0, "shadow_seconds": 0.0},
    }  # fmt: skip


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def add_route(into: dict[str, Any], route: dict[str, Any], keep: int) -> dict[str, Any]:
    for key in ROUTE_COUNTS:
        into[key] += route[key]
    for source, counts in route["aa_sources"].items():
        _add(into["aa_sources"].setdefault(source, {"observations": 0, "errors": 0}), counts)
    _add(into["outcomes"], route["outcomes"])
    _add(into["latency"], route.get("latency", {}))
    host = into["host_explained"]
    host["count"] += route["host_explained"]["count"]
    for pair in route["host_explained"]["examples"]:
        if len(host["examples"]) < HOST_EXAMPLES and list(pair) not in host["examples"]:
            host["examples"].append(list(pair))
    fields = {(f["part"], f["path"]): f for f in into["fields"]}
    for field in route["fields"]:
        key = (field["part"], field["path"])
        if key in fields:
            _add_field(fields[key], field, keep)
        else:
            fields[key] = _copy_field(field)
            into["fields"].append(fields[key])
    return into


def _copy_field(field: dict[str, Any]) -> dict[str, Any]:
    copy = dict(field)
    for key in ("differences", "noise"):
        copy[key] = dict(field[key])
    copy["noise_by_source"] = {source: dict(kinds) for source, kinds in field["noise_by_source"].items()}
    copy["examples"] = list(field["examples"])
    copy["numeric"] = _numeric(None, field["numeric"])
    if field["transitions"] is not None:
        copy["transitions"] = [list(t) for t in field["transitions"]]
    return copy


def _add_field(into: dict[str, Any], field: dict[str, Any], keep: int) -> None:
    for key in FIELD_COUNTS:
        into[key] += field[key]
    _add(into["differences"], field["differences"])
    _add(into["noise"], field["noise"])
    for source, kinds in field["noise_by_source"].items():
        _add(into["noise_by_source"].setdefault(source, {}), kinds)
    into["first_seen"] = min(into["first_seen"], field["first_seen"])
    into["last_seen"] = max(into["last_seen"], field["last_seen"])
    examples = sorted([*into["examples"], *field["examples"]], key=lambda e: e["seen"])
    into["examples"] = examples if len(examples) <= keep + 1 else [*examples[:keep], examples[-1]]
    into["numeric"] = _numeric(into["numeric"], field["numeric"])
    if field["transitions"] is not None:
        into["transitions"], other = _transitions(into["transitions"] or [], field["transitions"])
        into["transitions_other"] += other


def _numeric(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if b is None:
        return a
    if a is None:
        return {"absolute": list(b["absolute"]), "relative": list(b["relative"]), "max_absolute": b["max_absolute"]}
    return {
        "absolute": [x + y for x, y in zip(a["absolute"], b["absolute"])],
        "relative": [x + y for x, y in zip(a["relative"], b["relative"])],
        "max_absolute": max(a["max_absolute"], b["max_absolute"]),
    }


def _transitions(a: list[list[Any]], b: list[list[Any]]) -> tuple[list[list[Any]], int]:
    """Both lists added by (primary, shadow), the most frequent kept; and the count left out."""
    counts: dict[tuple[Any, ...], list[Any]] = {}
    for primary, shadow, n in (*a, *b):
        key = (type(primary).__name__, primary, type(shadow).__name__, shadow)  # True and 1 never share a key
        if key in counts:
            counts[key][2] += n
        else:
            counts[key] = [primary, shadow, n]
    ranked = sorted(counts.values(), key=lambda t: -t[2])  # stable: ties keep their order
    kept = ranked[: changes.MAX_TRANSITIONS]
    return kept, sum(t[2] for t in ranked[changes.MAX_TRANSITIONS :])
