"""The store's one writer: a thread of its own, so that no client ever waits on the store.

The event loop hands it two things and never blocks doing so:
- `stats(routes)`: the field statistics of the routes that moved (a snapshot, every
  store.flush_interval). Only the latest per route is kept until the thread takes it.
- `sample(report, signatures)`: a comparison to keep as a sample. At most
  store.max_queued wait, holding at most MAX_QUEUED_BYTES of bodies; past either one
  is dropped and counted (`shadowdiff_store_dropped_total{what="sample"}`).

Each flush is one transaction. Statistics: the difference since the last snapshot
(store.delta) is added into the current minute's bucket, which the writer holds in
memory and writes whole (`ON CONFLICT DO UPDATE`): a write that fails is simply
written again at the next flush, so a store that was down loses no counts, only the
samples of the failed flushes (counted). Minutes waiting for a store that stays down
are bounded (MAX_PENDING_BUCKETS): past it the oldest takes in the next, so the counts of
a long outage are all written, to the minute it began.
Samples are redacted here (store.samples.record), with the Redactor of the publish
pipeline's settings, rebuilt when they change.

Errors: each failed flush counts in `shadowdiff_store_errors_total{op}`; the first of a
burst is logged (`store_error`), the next success logs `store_recovered`. The
connection is reopened at the next flush. Retention runs every RETENTION_EVERY
seconds: rows older than store.max_age go, then, while the store is larger than
store.max_bytes, the oldest tenth of the samples, then the oldest buckets.
"""

from __future__ import annotations

import collections
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from shadowdiff import log
from shadowdiff.model import AA_LANES, IGNORED, MATCH, MISMATCH, NOISE, SHADOW_ERROR
from shadowdiff.noise.merge import add_route, empty_route
from shadowdiff.publish.redact import Redaction, Redactor, Report
from shadowdiff.store import samples as sampling
from shadowdiff.store.database import Database, reason
from shadowdiff.store.delta import subtract

BUCKET = 60  # seconds a statistics row covers
MAX_PENDING_BUCKETS = 3  # minutes of statistics held while the store is down
MAX_QUEUED_BYTES = 32 * 1024 * 1024
RETENTION_EVERY = 60.0
EXAMPLES = 2
OUTCOMES = (MATCH, MISMATCH, IGNORED, NOISE, SHADOW_ERROR)
Record = tuple[dict[str, Any], tuple[Any, ...], tuple[Any, ...]]  # (sample, stored signatures, the Sampler's)
# route_stats' columns after (instance, route, bucket), in _route_row's order
ROUTE_COLUMNS = (
    "compared", "aa_compared", *(f"o_{o}" for o in OUTCOMES), "untracked", "cut", "host_count",
    "timed", "primary_seconds", "shadow_seconds",
    *(f"aa_{s}" for s in AA_LANES), *(f"aa_{s}_errors" for s in AA_LANES), "host_examples",
)  # fmt: skip


def instance_name(configured: str) -> str:
    """This process's name in the store: store.instance (or the host name), its pid, and a mark of
    this start (a container's pid 1, or a restarted worker's pid, comes back: its rows must not
    replace the last life's)."""
    return f"{configured or socket.gethostname()}/{os.getpid()}-{secrets.token_hex(2)}"


def _held(report: Report) -> int:
    """Bytes of bodies a queued sample keeps alive."""
    comparison = report.comparison
    total = len(comparison.request.body)
    for observation in (comparison.control, comparison.candidate):
        if observation.body is not None and observation.body.data is not None:
            total += len(observation.body.data)
    return total


class StoreWriter:
    def __init__(
        self,
        database: Database,
        *,
        instance: str,
        redaction: Callable[[], Redaction],
        flush_interval: float = 2.0,
        max_queued: int = 256,
        max_age: float = 7 * 86400.0,
        max_bytes: int = 256 * 1024 * 1024,
        on_error: Callable[[str], None] = lambda op: None,
        on_drop: Callable[[str, int], None] = lambda what, n: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.instance = instance
        self.flush_interval = flush_interval  # live
        self.max_queued = max_queued  # live
        self.max_age = max_age  # live
        self.max_bytes = max_bytes  # live
        self._redaction = redaction
        self._redactor: Redactor | None = None
        self._on_error = on_error
        self._on_drop = on_drop
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[str, dict[str, Any]] = {}  # route -> its latest snapshot, not taken yet
        self._samples: collections.deque[tuple[Report, tuple[Any, ...], int]] = collections.deque()
        self._queued_bytes = 0
        self._requested = 0  # flushes asked for (flush())
        self._done = 0  # flushes finished (whatever their result)
        self._stopping = False
        # The thread's own state:
        self._previous: dict[str, dict[str, Any]] = {}  # route -> the last snapshot taken
        self._buckets: dict[int, dict[str, dict[str, Any]]] = {}  # bucket -> route -> its sum in the bucket
        self._dirty: dict[tuple[int, str], set[tuple[str, str]]] = {}  # (bucket, route) -> fields to write
        self._failing = False
        self._last_retention = 0.0
        self.written = 0  # flushes that committed (tests and the benchmark read it)
        # The Sampler's signatures of samples the thread could not keep (AttachedStore hands them back).
        self.unkept: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=4096)
        self._thread = threading.Thread(target=self._run, name="shadowdiff-store", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the event loop's side (never blocks) ---------------------------------------

    def stats(self, routes: dict[str, dict[str, Any]]) -> None:
        if not routes:
            return
        with self._cond:
            self._pending.update(routes)

    def sample(self, report: Report, signatures: tuple[Any, ...]) -> bool:
        held = _held(report)
        with self._cond:
            if len(self._samples) >= self.max_queued or self._queued_bytes + held > MAX_QUEUED_BYTES:
                dropped = True
            else:
                self._samples.append((report, signatures, held))
                self._queued_bytes += held
                dropped = False
        if dropped:
            self._on_drop("sample", 1)
        return not dropped

    # -- any thread but the loop ------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask for a flush now and wait for it (True: it ran, whatever its result). Not on the loop."""
        if not self._thread.is_alive():
            return False
        with self._cond:
            self._requested += 1
            target = self._requested
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target or self._stopping, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """A last flush of what is pending (up to `timeout`), then the thread stops."""
        if not self._thread.is_alive():
            self.database.close()
            return
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.database.close()

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._requested > self._done, self.flush_interval)
                if self._stopping:
                    return
                target = self._requested
                pending, self._pending = self._pending, {}
                batch = list(self._samples)
                self._samples.clear()
                self._queued_bytes = 0
            try:
                self._flush(pending, batch)
            except Exception as exc:  # never lose the thread: a bug here is logged and the loop goes on
                log.event("error", "store_failed", exc_info=exc)
            with self._cond:
                self._done = max(self._done, target)
                self._cond.notify_all()

    def _flush(self, pending: dict[str, dict[str, Any]], batch: list[tuple[Report, tuple[Any, ...], int]]) -> None:
        now = self._clock()
        bucket = int(now // BUCKET * BUCKET)
        for route, current in pending.items():
            delta = subtract(current, self._previous.get(route))
            self._previous[route] = current
            if delta is None:
                continue
            sums = self._buckets.setdefault(bucket, {})
            add_route(sums.setdefault(route, empty_route()), delta, EXAMPLES)
            fields = {(f["part"], f["path"]) for f in delta["fields"]}
            self._dirty[(bucket, route)] = self._dirty.get((bucket, route), set()) | fields
        self._bound_buckets()
        records = self._records(batch)
        if not self._dirty and not records and now - self._last_retention < RETENTION_EVERY:
            return
        db = self.database
        try:
            db.connect()
            self._write_stats()
            self._write_samples(records, now)
            db.commit()
        except Exception as exc:
            db.rollback()
            db.close()
            self._failed("write", exc)
            for *_, taken in records:
                self._unkept(taken)
            return
        self._dirty.clear()
        for old in [b for b in self._buckets if b < bucket]:
            del self._buckets[old]
        self.written += 1
        if self._failing:
            self._failing = False
            log.event("info", "store_recovered", store=db.location.shown)
        if now - self._last_retention >= RETENTION_EVERY:
            self._last_retention = now
            self.retain(now)

    def _bound_buckets(self) -> None:
        """A store down for long: the oldest pending minute takes in the next one (counts kept, their
        minute lost). Only the oldest may have been written before (the current minute at the last
        success), and it is written whole, so nothing is counted twice."""
        while len(self._buckets) > MAX_PENDING_BUCKETS:
            oldest, following = sorted(self._buckets)[:2]
            into = self._buckets[oldest]
            for route, sums in self._buckets.pop(following).items():
                add_route(into.setdefault(route, empty_route()), sums, EXAMPLES)
                moved = self._dirty.pop((following, route), set())
                self._dirty[(oldest, route)] = self._dirty.get((oldest, route), set()) | moved

    def _failed(self, op: str, exc: Exception) -> None:
        self._on_error(op)
        if not self._failing:
            self._failing = True
            log.event("warning", "store_error", op=op, store=self.database.location.shown, error=reason(exc))

    def _current_redactor(self) -> Redactor:
        spec = self._redaction()
        if self._redactor is None or self._redactor.spec != spec:
            self._redactor = Redactor(spec)
        return self._redactor

    def _unkept(self, taken: tuple[Any, ...]) -> None:
        """A sample the Sampler counted was not written: counted as dropped, handed back to the Sampler."""
        self._on_drop("sample", 1)
        self.unkept.append(taken)

    def _records(self, batch: list[tuple[Report, tuple[Any, ...], int]]) -> list[Record]:
        """(the sample as stored, the fields it is listed under, the Sampler's signatures)."""
        if not batch:
            return []
        redactor = self._current_redactor()
        out = []
        for report, taken, _ in batch:
            try:
                out.append((sampling.record(report, redactor), sampling.signatures_of(report.comparison, redactor), taken))
            except Exception as exc:  # one odd exchange must not cost the others
                log.event("error", "store_failed", exc_info=exc)
                self._unkept(taken)
        return out

    def _write_stats(self) -> None:
        db, instance = self.database, self.instance
        route_rows, kind_rows, value_rows = [], [], []
        for (bucket, route), fields in self._dirty.items():
            sums = self._buckets.get(bucket, {}).get(route)
            if sums is None:
                continue
            route_rows.append(_route_row(instance, route, bucket, sums, self._current_redactor()))
            for field in sums["fields"]:
                key = (field["part"], field["path"])
                if key not in fields:
                    continue
                base = (instance, route, field["part"], field["path"])
                kind_rows.append((*base, "", bucket, field["differed"], field["aa_differed"]))
                for kind in sorted({*field["differences"], *field["noise"]}):
                    kind_rows.append((*base, kind, bucket, field["differences"].get(kind, 0), field["noise"].get(kind, 0)))
                value_rows.append((*base, bucket, orjson.dumps(_values(field)).decode()))
        updates = ", ".join(f"{c} = excluded.{c}" for c in ROUTE_COLUMNS)
        db.executemany(
            f"INSERT INTO route_stats (instance, route, bucket, {', '.join(ROUTE_COLUMNS)})"
            f" VALUES ({', '.join('?' * (3 + len(ROUTE_COLUMNS)))})"
            f" ON CONFLICT (instance, route, bucket) DO UPDATE SET {updates}",
            route_rows,
        )
        db.executemany(
            "INSERT INTO field_stats (instance, route, part, path, kind, bucket, differed, aa_differed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance, route, part, path, kind, bucket)"
            " DO UPDATE SET differed = excluded.differed, aa_differed = excluded.aa_differed",
            kind_rows,
        )
        db.executemany(
            "INSERT INTO field_values (instance, route, part, path, bucket, data) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (instance, route, part, path, bucket) DO UPDATE SET data = excluded.data",
            value_rows,
        )

    def _write_samples(self, records: list[Record], now: float) -> None:
        db = self.database
        for sample, signatures, _ in records:
            data, size = sampling.size_of(sample)
            rows = db.execute(
                "INSERT INTO samples (instance, route, seen, request_id, method, target, outcome, size, summary, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (self.instance, sample["route"], now, sample["request_id"], sample["method"], sample["target"][:2048],
                 sample["outcome"], size, orjson.dumps(sampling.summary_of(sample)).decode(), data.decode()),
            )  # fmt: skip
            sample_id = rows[0][0]
            db.executemany(
                "INSERT INTO sample_fields (sample_id, route, part, path) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(sample_id, route, part, path) for route, part, path in signatures],
            )

    # -- retention ------------------------------------------------------------------------

    def retain(self, now: float) -> None:
        """Delete what is older than max_age, then the oldest while the store passes max_bytes."""
        db = self.database
        try:
            cutoff = now - self.max_age
            bucket_cutoff = int(cutoff // BUCKET * BUCKET)
            for table in ("route_stats", "field_stats", "field_values"):
                db.execute(f"DELETE FROM {table} WHERE bucket < ?", (bucket_cutoff,))
            db.execute("DELETE FROM sample_fields WHERE sample_id IN (SELECT id FROM samples WHERE seen < ?)", (cutoff,))
            db.execute("DELETE FROM samples WHERE seen < ?", (cutoff,))
            db.commit()
            for _ in range(50):  # each pass frees about a tenth; never a loop without end
                if db.size() <= self.max_bytes:
                    break
                if not self._shed():
                    break
            db.give_back()
            db.commit()  # size()'s reads end their transaction: none is left open between flushes
        except Exception as exc:
            db.rollback()
            db.close()
            self._failed("retention", exc)

    def _shed(self) -> bool:
        """Delete the oldest tenth of the samples, or else the oldest bucket; False when empty."""
        db = self.database
        count = db.execute("SELECT COUNT(*) FROM samples")[0][0]
        if count:
            last = db.execute("SELECT id FROM samples ORDER BY id LIMIT 1 OFFSET ?", (max(0, count // 10),))
            limit = last[0][0] if last else None
            if limit is None:
                return False
            db.execute("DELETE FROM sample_fields WHERE sample_id <= ?", (limit,))
            db.execute("DELETE FROM samples WHERE id <= ?", (limit,))
            db.commit()
            return True
        oldest = db.execute("SELECT MIN(bucket) FROM route_stats")[0][0]
        if oldest is None:
            return False
        for table in ("route_stats", "field_stats", "field_values"):
            db.execute(f"DELETE FROM {table} WHERE bucket <= ?", (oldest,))
        db.commit()
        return True


def _route_row(instance: str, route: str, bucket: int, sums: dict[str, Any], redactor: Redactor) -> tuple[Any, ...]:
    outcomes, latency, sources = sums["outcomes"], sums["latency"], sums["aa_sources"]
    counts = [sums["compared"], sums["aa_compared"], *(outcomes.get(o, 0) for o in OUTCOMES)]
    counts += [sums["untracked"], sums["cut"], sums["host_explained"]["count"]]
    counts += [latency["timed"], latency["primary_seconds"], latency["shadow_seconds"]]
    counts += [sources.get(s, {}).get("observations", 0) for s in AA_LANES]
    counts += [sources.get(s, {}).get("errors", 0) for s in AA_LANES]
    examples = [[redactor.text(str(value)) for value in pair] for pair in sums["host_explained"]["examples"]]
    return (instance, route, bucket, *counts, orjson.dumps(examples).decode())


def _values(field: dict[str, Any]) -> dict[str, Any]:
    """What a field row keeps beside its counts (examples, changes, first and last seen)."""
    keys = ("first_seen", "last_seen", "examples", "numeric", "non_numeric", "transitions", "transitions_other", "noise_by_source")
    return {key: field[key] for key in keys}
