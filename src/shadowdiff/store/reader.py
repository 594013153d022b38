"""Reading the store back: field statistics over a time range, trends, samples.

What it returns has the shape `FieldStats.snapshot()` gives (noise.fields), summed over
every instance and bucket in the range, so the admin API's views (noise.views) draw the
verdicts from the summed evidence under the running config's thresholds, whichever
proxies wrote it. Counts are summed by the database (`GROUP BY`); a field's examples and
changes (field_values) are read for one route at a time, from the field's newest
VALUE_BUCKETS minutes in the range, and merged as the workers' snapshots are
(noise.merge). Lists of samples (`summary=True`) read their small summary column alone,
not the bodies.

A range is [start, end) in epoch seconds, by bucket (a minute): a row belongs to the
range when its bucket starts in it. Every call blocks: the admin listener runs them in
a thread (`asyncio.to_thread`), one at a time on the reader's own connection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from shadowdiff.model import AA_LANES
from shadowdiff.noise.merge import add_route, empty_route
from shadowdiff.noise.verdict import Thresholds
from shadowdiff.store.database import Database
from shadowdiff.store.writer import BUCKET, OUTCOMES

MAX_SAMPLES = 100
VALUE_BUCKETS = 30  # the newest minutes a field's examples and changes are drawn from, per read
FOREVER = 1 << 62


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _field(part: str, path: str) -> dict[str, Any]:
    return {
        "part": part, "path": path, "differed": 0, "aa_differed": 0, "differences": {}, "noise": {},
        "noise_by_source": {}, "first_seen": 0.0, "last_seen": 0.0, "examples": [], "numeric": None,
        "non_numeric": 0, "transitions": None, "transitions_other": 0,
    }  # fmt: skip


class StoreReader:
    def __init__(self, database: Database) -> None:
        self.database = database

    def _query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self.database
        with db.lock:
            try:
                db.connect()
                rows = db.execute(statement, params)
                db.rollback()  # a read ends its transaction: the next one sees what was written since
                return rows
            except Exception:
                db.rollback()
                db.close()
                raise

    # -- statistics -----------------------------------------------------------------------

    def snapshot(self, thresholds: Thresholds, *, start: int = 0, end: int = FOREVER, route: str | None = None) -> dict[str, Any]:
        """The statistics summed over [start, end): every route's counts, or one route's with its
        fields' examples and changes (`route`)."""
        where, params = "bucket >= ? AND bucket < ?", (start, end)
        if route is not None:
            where, params = where + " AND route = ?", (*params, route)
        aa_columns = [f"aa_{s}" for s in AA_LANES] + [f"aa_{s}_errors" for s in AA_LANES]
        sums = ", ".join(
            f"SUM({c})" for c in ("compared", "aa_compared", *(f"o_{o}" for o in OUTCOMES), "untracked", "cut",
                                  "host_count", "timed", "primary_seconds", "shadow_seconds", *aa_columns)
        )  # fmt: skip
        routes: dict[str, dict[str, Any]] = {}
        for row in self._query(f"SELECT route, {sums} FROM route_stats WHERE {where} GROUP BY route", params):
            name, values = row[0], [v or 0 for v in row[1:]]
            compared, aa_compared, *rest = values
            outcomes, rest = rest[: len(OUTCOMES)], rest[len(OUTCOMES) :]
            untracked, cut, host_count, timed, primary_s, shadow_s, *aa = rest
            observations, errors = aa[: len(AA_LANES)], aa[len(AA_LANES) :]
            entry = empty_route()
            entry.update(
                compared=int(compared), aa_compared=int(aa_compared), untracked=int(untracked), cut=int(cut),
                outcomes={o: int(n) for o, n in zip(OUTCOMES, outcomes) if n},
                latency={"timed": int(timed), "primary_seconds": float(primary_s), "shadow_seconds": float(shadow_s)},
                aa_sources={s: {"observations": int(o), "errors": int(e)} for s, o, e in zip(AA_LANES, observations, errors) if o or e},
            )  # fmt: skip
            entry["host_explained"]["count"] = int(host_count)
            routes[name] = entry
        for name, entry in routes.items():
            if entry["host_explained"]["count"]:
                found = self._query(
                    "SELECT host_examples FROM route_stats WHERE route = ? AND host_count > 0 AND bucket >= ? AND bucket < ?"
                    " ORDER BY bucket DESC LIMIT 1",
                    (name, start, end),
                )
                entry["host_explained"]["examples"] = orjson.loads(found[0][0]) if found else []
        fields: dict[tuple[str, str, str], dict[str, Any]] = {}
        if route is not None and route in routes:
            # Each field's examples and changes from its newest VALUE_BUCKETS rows in the range: a
            # week of minutes would be thousands of rows a field to merge (its counts are all summed).
            rows = self._query(
                "SELECT part, path, data FROM (SELECT part, path, bucket, data, ROW_NUMBER() OVER"
                f" (PARTITION BY part, path ORDER BY bucket DESC) AS newest FROM field_values WHERE {where}) AS recent"
                " WHERE newest <= ? ORDER BY bucket",
                (*params, VALUE_BUCKETS),
            )
            sums: dict[tuple[str, str, str], dict[str, Any]] = {}  # a route of one field each: a merge costs that field
            for part, path, data in rows:
                one = {**empty_route(), "fields": [{**_field(part, path), **orjson.loads(data)}]}
                add_route(sums.setdefault((route, part, path), empty_route()), one, 2)
            fields = {key: summed["fields"][0] for key, summed in sums.items()}
        kinds = self._query(
            f"SELECT route, part, path, kind, SUM(differed), SUM(aa_differed) FROM field_stats WHERE {where}"
            " GROUP BY route, part, path, kind",
            params,
        )
        for name, part, path, kind, differed, aa_differed in kinds:
            if name not in routes:
                continue
            field = fields.get((name, part, path))
            if field is None:
                field = fields[(name, part, path)] = _field(part, path)
            if kind == "":
                field["differed"], field["aa_differed"] = int(differed), int(aa_differed)
            else:
                if differed:
                    field["differences"][kind] = int(differed)
                if aa_differed:
                    field["noise"][kind] = int(aa_differed)
        for (name, _, _), field in fields.items():
            routes[name]["fields"].append(field)
        t = thresholds
        return {
            "thresholds": {"relative": t.relative, "absolute": t.absolute, "min_observations": t.min_observations},
            "caps": {},
            "untracked_routes": 0,
            "untracked_routes_aa": 0,
            "routes": routes,
        }

    def _steps(self, table: str, where: str, params: tuple[Any, ...], start: int, end: int, points: int) -> tuple[int, int, int] | None:
        """(lo, hi, step) of a trend: the range's first and past-last bucket with data in `table`, and
        a whole number of buckets a step, so that at most `points` steps cover it; None without data."""
        first, last = self._query(f"SELECT MIN(bucket), MAX(bucket) FROM {table} WHERE {where}", params)[0]
        if first is None:
            return None
        lo, hi = max(int(first), start), min(end, int(last) + BUCKET)
        return lo, hi, max(BUCKET, -(-(hi - lo) // points // BUCKET) * BUCKET)

    def trend(self, *, start: int = 0, end: int = FOREVER, route: str | None = None, points: int = 48) -> dict[str, Any]:
        """Per step (a whole number of buckets, so that at most `points` steps cover the range): each
        route's comparisons, mismatches, noise and shadow errors, and each side's mean latency."""
        where, params = "bucket >= ? AND bucket < ?", (start, end)
        if route is not None:
            where, params = where + " AND route = ?", (*params, route)
        steps = self._steps("route_stats", where, params, start, end, points)
        if steps is None:
            return {"step": BUCKET, "start": None, "end": None, "routes": {}}
        lo, hi, step = steps
        rows = self._query(
            f"SELECT route, (bucket - ?) / ? AS slot, SUM(compared), SUM(o_mismatch), SUM(o_noise), SUM(o_shadow_error),"
            f" SUM(timed), SUM(primary_seconds), SUM(shadow_seconds) FROM route_stats WHERE {where}"
            " GROUP BY route, slot ORDER BY route, slot",
            (lo, step, *params),
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for name, slot, compared, mismatch, noise, errors, timed, primary_s, shadow_s in rows:
            timed = int(timed or 0)
            out.setdefault(name, []).append({
                "t": iso(lo + int(slot) * step), "compared": int(compared or 0), "mismatch": int(mismatch or 0),
                "noise": int(noise or 0), "shadow_error": int(errors or 0),
                "primary_ms": round(primary_s / timed * 1000, 3) if timed else None,
                "shadow_ms": round(shadow_s / timed * 1000, 3) if timed else None,
            })  # fmt: skip
        return {"step": step, "start": iso(lo), "end": iso(hi), "routes": out}

    def field_trend(self, route: str, *, start: int = 0, end: int = FOREVER, points: int = 48) -> dict[str, Any]:
        """Per (part, path) of `route`, the shadow comparisons that differed there in each step."""
        where, params = "route = ? AND bucket >= ? AND bucket < ?", (route, start, end)
        steps = self._steps("field_stats", where, params, start, end, points)
        if steps is None:
            return {"step": BUCKET, "start": None, "end": None, "fields": {}}
        lo, hi, step = steps
        slots = max(1, -(-(hi - lo) // step))
        rows = self._query(
            f"SELECT part, path, (bucket - ?) / ? AS slot, SUM(differed) FROM field_stats WHERE {where} AND kind = ''"
            " GROUP BY part, path, slot",
            (lo, step, *params),
        )
        out: dict[str, list[int]] = {}
        for part, path, slot, differed in rows:
            series = out.setdefault(f"{part} {path}", [0] * slots)
            if 0 <= int(slot) < slots:
                series[int(slot)] = int(differed or 0)
        return {"step": step, "start": iso(lo), "end": iso(hi), "fields": out}

    # -- samples ----------------------------------------------------------------------------

    def samples(
        self, route: str, *, part: str | None = None, path: str | None = None, limit: int = 20,
        start: int = 0, end: int = FOREVER, summary: bool = False,
    ) -> list[dict[str, Any]]:
        """The newest samples of `route` (of one field's: `path`, with `part`) seen in [start, end),
        newest first; with `summary`, each one's summary (request, statuses, differing paths) alone."""
        limit = max(1, min(limit, MAX_SAMPLES))
        column = "s.summary" if summary else "s.data"
        if path is None:
            rows = self._query(
                f"SELECT s.id, s.instance, s.seen, {column} FROM samples s WHERE s.route = ? AND s.seen >= ? AND s.seen < ?"
                " ORDER BY s.id DESC LIMIT ?",
                (route, start, end, limit),
            )
        else:
            extra, params = ("AND f.part = ?", (route, path, part, start, end, limit)) if part else ("", (route, path, start, end, limit))
            rows = self._query(
                f"SELECT s.id, s.instance, s.seen, {column} FROM sample_fields f JOIN samples s ON s.id = f.sample_id"
                f" WHERE f.route = ? AND f.path = ? {extra} AND s.seen >= ? AND s.seen < ? ORDER BY s.id DESC LIMIT ?",
                params,
            )
        return [_sample(*row) for row in rows]

    def sample(self, sample_id: int) -> dict[str, Any] | None:
        if not 0 < sample_id < 1 << 63:
            return None
        rows = self._query("SELECT id, instance, seen, data FROM samples WHERE id = ?", (sample_id,))
        return _sample(*rows[0]) if rows else None

    def instances(self) -> list[dict[str, Any]]:
        """Every instance that wrote statistics, with the last bucket it wrote."""
        rows = self._query("SELECT instance, MAX(bucket) FROM route_stats GROUP BY instance ORDER BY instance")
        return [{"instance": name, "last_seen": iso(int(last) + BUCKET)} for name, last in rows]


def _sample(sample_id: int, instance: str, seen: float, data: str) -> dict[str, Any]:
    out = {"id": int(sample_id), "instance": instance, "seen": iso(float(seen))}
    out.update(orjson.loads(data))
    return out
