"""Runs comparisons without blocking the event loop.

Small exchanges (both bodies up to `compare.offload_bytes`) are compared inline:
measured in benchmarks/compare_cost.py, they cost well under a millisecond.
Larger bodies are compared in one worker process, with the same pure function;
the number waiting is bounded by the mirror's in-flight cap, since each waits
inside its shadow slot.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from shadowdiff import log
from shadowdiff.compare import Comparison, Exchange, compare
from shadowdiff.compare.body import Limits, compare_bodies
from shadowdiff.compare.engine import assemble, body_view
from shadowdiff.compare.model import SHADOW_ERROR
from shadowdiff.compare.rules import Rules
from shadowdiff.config import CompareConfig


class Comparator:
    def __init__(self, config: CompareConfig) -> None:
        self.rules = Rules(config.rules)
        self.limits = Limits(max_decoded_bytes=config.max_decoded_bytes, max_differences=config.max_differences)
        self._offload_bytes = config.offload_bytes
        self._pool: ProcessPoolExecutor | None = None

    async def compare(self, exchange: Exchange) -> Comparison:
        rules = self.rules.for_route(exchange.request.route)
        if not exchange.shadow.ok:
            return Comparison(exchange, SHADOW_ERROR)
        if self._size(exchange) <= self._offload_bytes:
            return compare(exchange, rules, self.limits)
        primary, shadow = body_view(exchange.primary), body_view(exchange.shadow)
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self._worker(), compare_bodies, primary, shadow, rules, self.limits)
        except BrokenProcessPool:
            log.event("error", "compare_worker_died", request_id=exchange.request.request_id)
            self._pool = None  # a new worker next time; this exchange is compared here
            body = compare_bodies(primary, shadow, rules, self.limits)
        return assemble(exchange, rules, self.limits, body)

    @staticmethod
    def _size(exchange: Exchange) -> int:
        sizes = [o.body.size for o in (exchange.primary, exchange.shadow) if o.body is not None]
        return max(sizes, default=0)

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: a clean worker, not a fork of a process with a running event loop
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
