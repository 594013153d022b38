"""The admin API's JSON, read from a field statistics snapshot (one worker's or merged).

Verdicts are computed here, from the counts, under the snapshot's thresholds: a merged
snapshot gets the verdicts of the summed evidence, never a vote of the workers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shadowdiff.model import IGNORED, MATCH, MISMATCH, NOISE, SHADOW_ERROR
from shadowdiff.noise import changes, suggest
from shadowdiff.noise.verdict import REGRESSION, SEVERITY, UNDECIDED, VERDICTS, Thresholds, verdict, worst

OUTCOMES = (MATCH, MISMATCH, IGNORED, NOISE, SHADOW_ERROR)
HOST_HINT = (
    "the shadow wrote its own authority where the primary wrote the client's Host: set shadow.host_header: client "
    "so both see the client's Host (or keep own if the shadow needs it to route)"
)


def _thresholds(snapshot: dict[str, Any]) -> Thresholds:
    t = snapshot["thresholds"]
    return Thresholds(relative=t["relative"], absolute=t["absolute"], min_observations=t["min_observations"])


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _comparisons(route: dict[str, Any]) -> dict[str, int]:
    counts = {outcome: route["outcomes"].get(outcome, 0) for outcome in OUTCOMES}
    counts.update((o, n) for o, n in route["outcomes"].items() if o not in counts)  # never hide a count
    return counts


def _host(route: dict[str, Any]) -> dict[str, Any]:
    host = route["host_explained"]
    return {
        "count": host["count"],
        "examples": [{"part": part, "path": path} for part, path in host["examples"]],
        "hint": HOST_HINT if host["count"] else None,
    }


def _aa(route: dict[str, Any]) -> dict[str, Any]:
    sources = route["aa_sources"]
    return {
        "observations": route["aa_compared"],
        "errors": sum(s["errors"] for s in sources.values()),
        "by_source": {name: dict(counts) for name, counts in sorted(sources.items())},
    }


def _latency(route: dict[str, Any]) -> dict[str, Any]:
    """Mean latency of each side over the shadow comparisons where both answered (ms; None: none yet)."""
    latency = route.get("latency") or {}
    timed = latency.get("timed", 0)
    mean = lambda seconds: round(seconds / timed * 1000, 3) if timed else None  # noqa: E731
    return {"timed": timed, "primary_ms": mean(latency.get("primary_seconds", 0.0)), "shadow_ms": mean(latency.get("shadow_seconds", 0.0))}


def _kinds(route: dict[str, Any], field: dict[str, Any], t: Thresholds) -> dict[str, dict[str, Any]]:
    out = {}
    for kind in sorted({*field["differences"], *field["noise"]}):
        d, n = field["differences"].get(kind, 0), field["noise"].get(kind, 0)
        out[kind] = {"differences": d, "noise": n, "verdict": verdict(d, route["compared"], n, route["aa_compared"], t)}
    return out


def row_verdict(kinds: dict[str, dict[str, Any]]) -> str:
    """The worst verdict over the kinds the shadow produced; noise for A/A differences alone."""
    return worst([k["verdict"] for k in kinds.values() if k["differences"]])


def routes_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The JSON of GET /api/v1/routes: per route, its outcomes, A/A evidence and verdict counts."""
    t = _thresholds(snapshot)
    routes = []
    for name in sorted(snapshot["routes"]):
        route = snapshot["routes"][name]
        verdicts = dict.fromkeys((REGRESSION, UNDECIDED, NOISE), 0)
        for field in route["fields"]:
            verdicts[row_verdict(_kinds(route, field, t))] += 1
        routes.append(
            {
                "route": name,
                "comparisons": _comparisons(route),
                "compared": route["compared"],
                "latency": _latency(route),
                "aa": _aa(route),
                "fields": len(route["fields"]),
                "verdicts": verdicts,
                "untracked": route["untracked"],
                "cut": route["cut"],
                "host_explained": _host(route),
            }
        )
    return {
        "routes": routes,
        "untracked_routes": snapshot["untracked_routes"],
        "untracked_routes_aa": snapshot["untracked_routes_aa"],
        "thresholds": dict(snapshot["thresholds"]),
    }


def fields_view(snapshot: dict[str, Any], route: str, *, only: str | None = None) -> dict[str, Any] | None:
    """The JSON of GET /api/v1/fields?route=ROUTE (None: no comparison seen on that route);
    `only` keeps the rows of one verdict. Rows sort regression, undecided, noise, then by
    differences, most first."""
    stats = snapshot["routes"].get(route)
    if stats is None:
        return None
    if only is not None and only not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {only!r}")
    t = _thresholds(snapshot)
    rows = [_row(route, stats, field, t) for field in stats["fields"]]
    rows = [row for row in rows if only is None or row["verdict"] == only]
    rows.sort(key=lambda r: (-SEVERITY[r["verdict"]], -r["differences"], r["part"], r["path"]))
    return {
        "route": route,
        "comparisons": _comparisons(stats),
        "compared": stats["compared"],
        "latency": _latency(stats),
        "aa_observations": stats["aa_compared"],
        "aa": _aa(stats),
        "thresholds": dict(snapshot["thresholds"]),
        "fields": rows,
        "untracked": stats["untracked"],
        "cut": stats["cut"],
        "host_explained": _host(stats),
    }


def _row(name: str, route: dict[str, Any], field: dict[str, Any], t: Thresholds) -> dict[str, Any]:
    kinds = _kinds(route, field, t)
    found = row_verdict(kinds)
    compared, aa_compared = route["compared"], route["aa_compared"]
    differences, noise = field["differed"], field["aa_differed"]
    transitions = field["transitions"]
    rule = None
    if found == NOISE:
        evidence = f"{noise} of {aa_compared} A/A comparisons (the shadow: {differences} of {compared} comparisons)"
        rule = suggest.rule(name, field["part"], field["path"], evidence, numeric=field["numeric"], non_numeric=field["non_numeric"])
    return {
        "part": field["part"],
        "path": field["path"],
        "verdict": found,
        "differences": differences,
        "noise": noise,
        "aa_observations": aa_compared,
        "compared": compared,
        "rate": differences / compared if compared else None,
        "noise_rate": noise / aa_compared if aa_compared else None,
        "kinds": kinds,
        "noise_by_source": field["noise_by_source"],
        "first_seen": iso(field["first_seen"]),
        "last_seen": iso(field["last_seen"]),
        "examples": [
            {"path": e["path"], "kind": e["kind"], "primary": e["primary"], "shadow": e["shadow"], "seen": iso(e["seen"])}
            for e in field["examples"]
        ],
        "numeric": _numeric(field["numeric"]),
        "agreement": 1 - differences / compared if transitions is not None and compared else None,
        "transitions": None
        if transitions is None
        else [{"primary": a, "shadow": b, "count": n} for a, b, n in sorted(transitions, key=lambda x: -x[2])],
        "transitions_other": field["transitions_other"],
        "rule": rule,
    }


def _numeric(numeric: dict[str, Any] | None) -> dict[str, Any] | None:
    if numeric is None:
        return None
    return {
        "absolute": dict(zip(changes.ABSOLUTE_LABELS, numeric["absolute"])),
        "relative": dict(zip(changes.RELATIVE_LABELS, numeric["relative"])),
        "max_absolute": numeric["max_absolute"],
        "count": sum(numeric["absolute"]),
    }
