"""The store's publish sink: the comparisons the Sampler picks go to the writer as samples.

`wants()` runs on the event loop for every comparison a sink may get: it asks the
Sampler (a dict lookup per difference) and remembers the answer for the `__call__` that
follows it with the redacted report. The writer redacts bodies and headers on its own
thread (store.samples.record), so the loop only hands over a reference.
"""

from __future__ import annotations

from typing import Any

from shadowdiff.model import Comparison
from shadowdiff.publish.redact import Report
from shadowdiff.store.samples import Sampler
from shadowdiff.store.writer import StoreWriter


class StoreSink:
    name = "store"

    def __init__(self, writer: StoreWriter, sampler: Sampler) -> None:
        self.writer = writer
        self.sampler = sampler
        self._wanted: tuple[Comparison | None, tuple[Any, ...]] = (None, ())

    def wants(self, comparison: Comparison) -> bool:
        signatures = self.sampler.wants(comparison)
        self._wanted = (comparison, signatures) if signatures else (None, ())
        return bool(signatures)

    def __call__(self, report: Report) -> None:
        comparison, signatures = self._wanted
        self._wanted = (None, ())
        if comparison is report.comparison and signatures and not self.writer.sample(report, signatures):
            self.sampler.forget(signatures)  # the queue was full: the next one may take its place
