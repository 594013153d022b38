"""What changed on a route between two field statistics snapshots (noise.fields format).

The writer keeps the last snapshot it saw of each route and writes only the
difference into the current bucket: counts subtract, examples are the ones not seen
before, numeric buckets and transitions subtract; `first_seen`/`last_seen` and
`max_absolute` are the current ones (the largest move up to then). A route whose
counts did not move gives None. Counting restarts with the process (a new
instance's first snapshot is all new), so a restart never subtracts.
"""

from __future__ import annotations

from typing import Any

from shadowdiff.noise.merge import FIELD_COUNTS, ROUTE_COUNTS


def _minus(a: dict[str, Any], b: dict[str, Any] | None) -> dict[str, Any]:
    """Per key a - b, keeping keys that moved (nested one level for dicts of dicts)."""
    b = b or {}
    out: dict[str, Any] = {}
    for key, value in a.items():
        if isinstance(value, dict):
            inner = _minus(value, b.get(key))
            if inner:
                out[key] = inner
        else:
            moved = value - b.get(key, 0)
            if moved:
                out[key] = moved
    return out


def subtract(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """The route snapshot `current` minus `previous` (None: all of it is new); None if nothing moved."""
    fields_before = {(f["part"], f["path"]): f for f in (previous or {}).get("fields", ())}
    fields = [d for f in current["fields"] if (d := _field(f, fields_before.get((f["part"], f["path"])))) is not None]
    prev = previous or {}
    out: dict[str, Any] = {key: current[key] - prev.get(key, 0) for key in ROUTE_COUNTS}
    sources = {}
    for source, counts in current["aa_sources"].items():
        before = prev.get("aa_sources", {}).get(source, {})
        sources[source] = {k: counts[k] - before.get(k, 0) for k in ("observations", "errors")}
    out["aa_sources"] = {s: c for s, c in sources.items() if any(c.values())}
    out["outcomes"] = _minus(current["outcomes"], prev.get("outcomes"))
    latency, before = current.get("latency", {}), prev.get("latency", {})
    out["latency"] = {k: latency.get(k, 0) - before.get(k, 0) for k in ("timed", "primary_seconds", "shadow_seconds")}
    host, host_before = current["host_explained"], prev.get("host_explained", {"count": 0, "examples": []})
    out["host_explained"] = {
        "count": host["count"] - host_before["count"],
        "examples": [e for e in host["examples"] if e not in host_before["examples"]],
    }
    out["fields"] = fields
    moved = fields or any(out[k] for k in ROUTE_COUNTS) or out["aa_sources"] or out["outcomes"] or out["host_explained"]["count"]
    return out if moved else None


def _field(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if previous is None:
        return current
    out = dict(current)
    for key in FIELD_COUNTS:
        out[key] = current[key] - previous[key]
    out["differences"] = _minus(current["differences"], previous["differences"])
    out["noise"] = _minus(current["noise"], previous["noise"])
    out["noise_by_source"] = _minus(current["noise_by_source"], previous["noise_by_source"])
    if not (out["differed"] or out["aa_differed"] or out["differences"] or out["noise"]):
        return None
    seen = {(e["seen"], e["path"], e["kind"]) for e in previous["examples"]}
    out["examples"] = [e for e in current["examples"] if (e["seen"], e["path"], e["kind"]) not in seen]
    out["numeric"] = _numeric(current["numeric"], previous["numeric"])
    out["transitions"] = _transitions(current["transitions"], previous["transitions"])
    return out


def _numeric(current: dict[str, Any] | None, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if current is None or previous is None:
        return current
    absolute = [a - b for a, b in zip(current["absolute"], previous["absolute"])]
    relative = [a - b for a, b in zip(current["relative"], previous["relative"])]
    if not any(absolute):
        return None
    return {"absolute": absolute, "relative": relative, "max_absolute": current["max_absolute"]}


def _transitions(current: list[list[Any]] | None, previous: list[list[Any]] | None) -> list[list[Any]] | None:
    if current is None or previous is None:
        return current
    key = lambda t: (type(t[0]).__name__, t[0], type(t[1]).__name__, t[1])  # noqa: E731  True and 1 apart
    before = {key(t): t[2] for t in previous}
    moved = [[a, b, n - before.get(key([a, b]), 0)] for a, b, n in current]
    return [t for t in moved if t[2] > 0] or None
