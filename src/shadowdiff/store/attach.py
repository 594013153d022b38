"""The store as one proxy process uses it: its writer, sampler, publish sink and read source,
built from the `store` section and fed from the process's field statistics.

`AttachedStore.open()` raises StoreError when store.url cannot be opened (the CLI turns it
into exit 2). The writer's thread starts with `start()`; every store.flush_interval the
routes that moved are handed to it: a snapshot of each, taken on the loop (the statistics
live there) one route per loop turn, so that a client's request waits at most for one
route's copy (about 2 ms at noise.max_paths_per_route fields of 200-character values;
all 4,000 fields at once would be 45 ms). `flush()` writes what was counted so far,
before the API reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shadowdiff import log
from shadowdiff.config import StoreConfig
from shadowdiff.metrics import Metrics
from shadowdiff.noise.fields import FieldStats
from shadowdiff.publish.redact import Redaction
from shadowdiff.sources import StoreSource
from shadowdiff.store.database import Database, open_store
from shadowdiff.store.reader import StoreReader
from shadowdiff.store.samples import Sampler
from shadowdiff.store.sink import StoreSink
from shadowdiff.store.writer import StoreWriter, instance_name


class AttachedStore:
    def __init__(self, writer: StoreWriter, sampler: Sampler, fields: FieldStats, metrics: Metrics) -> None:
        self.writer = writer
        self.sampler = sampler
        self.sink = StoreSink(writer, sampler)
        self._fields = fields
        self.source = StoreSource(
            StoreReader(Database(writer.database.location, create=False)),
            lambda: fields.thresholds,
            before_read=self.flush,
            shown=writer.database.location.shown,
            on_error=lambda: metrics.store_errors.labels("read").inc(),
        )
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(
        cls, store: StoreConfig, fields: FieldStats, metrics: Metrics, redaction: Callable[[], Redaction]
    ) -> AttachedStore:
        writer = StoreWriter(
            open_store(store.url),
            instance=instance_name(store.instance),
            redaction=redaction,
            flush_interval=store.flush_interval,
            max_queued=store.max_queued,
            max_age=store.max_age,
            max_bytes=store.max_bytes,
            on_error=lambda op: metrics.store_errors.labels(op).inc(),
            on_drop=lambda what, n: metrics.store_dropped.labels(what).inc(n),
        )
        return cls(writer, Sampler(store.samples_per_field), fields, metrics)

    def start(self) -> None:
        self.writer.start()
        self._task = asyncio.create_task(self._feed())

    def apply(self, store: StoreConfig) -> None:
        """The keys that change live (the rest need a restart)."""
        writer = self.writer
        self.sampler.per_field = store.samples_per_field
        writer.flush_interval, writer.max_queued = store.flush_interval, store.max_queued
        writer.max_age, writer.max_bytes = store.max_age, store.max_bytes

    async def hand_stats(self) -> None:
        """Give the writer the statistics of the routes that moved, one route per loop turn (and hand
        the Sampler back the samples the writer could not keep)."""
        unkept = self.writer.unkept
        while unkept:
            self.sampler.forget(unkept.popleft())
        for route in self._fields.take_touched():
            self.writer.stats(self._fields.snapshot(route=route)["routes"])
            await asyncio.sleep(0)

    async def flush(self) -> None:
        """Write what this process counted so far (the API reads the store right after)."""
        await self.hand_stats()
        await asyncio.to_thread(self.writer.flush, 2.0)

    async def _feed(self) -> None:
        while True:
            await asyncio.sleep(self.writer.flush_interval)
            try:
                await self.hand_stats()
            except Exception as exc:  # a bug here must not stop the statistics reaching the store
                log.event("error", "store_failed", exc_info=exc)

    async def close(self) -> None:
        """Write what is left (up to 5 s) and close both connections."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.hand_stats()
        await asyncio.to_thread(self.writer.close, 5.0)
        self.source.reader.database.close()
