"""Runs comparisons without blocking the event loop.

Bodies that are byte-identical are settled inline at once. Small, unencoded bodies
(both up to `compare.offload_bytes`) are compared inline too: about 2 ms at the
64 KiB default (benchmarks/compare_cost.py). Anything larger, or compressed (a few
KB of gzip can decode to megabytes), goes to one worker process running the same
pure function. Each job has a deadline (`compare.timeout`); a worker that passes it,
or dies, is replaced, and that exchange fails to compare (counted by the caller),
never retried on the event loop. The number of jobs waiting is bounded by the
mirror's in-flight cap, since each waits inside its shadow slot.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from shadowdiff.compare import Comparison, Exchange
from shadowdiff.compare.body import BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.engine import assemble, body_view
from shadowdiff.compare.model import SHADOW_ERROR
from shadowdiff.compare.rules import Rules, RuleSet
from shadowdiff.config import CompareConfig


class CompareFailed(Exception):
    """The comparison could not be made (worker timed out or died, or the engine raised)."""


class Comparator:
    def __init__(self, config: CompareConfig) -> None:
        self.rules = Rules(config.rules)
        self.limits = Limits(max_decoded_bytes=config.max_decoded_bytes, max_differences=config.max_differences)
        self._offload_bytes = config.offload_bytes
        self._timeout = config.timeout
        self._pool: ProcessPoolExecutor | None = None

    async def compare(self, exchange: Exchange) -> Comparison:
        """The verdict on one exchange. Raises CompareFailed, never anything else."""
        if not exchange.shadow.ok:
            return Comparison(exchange, SHADOW_ERROR)
        rules = self.rules.for_route(exchange.request.route)
        primary, shadow = body_view(exchange.primary), body_view(exchange.shadow)
        try:
            if self._inline(primary, shadow):
                body = compare_bodies(primary, shadow, rules, self.limits)
            else:
                body = await self._offloaded(primary, shadow, rules)
            return assemble(exchange, rules, self.limits, body)
        except CompareFailed:
            raise
        except Exception as exc:  # a bug or an input the engine cannot take: data, not a crash
            raise CompareFailed(f"{type(exc).__name__}: {exc}") from exc

    def _inline(self, primary: BodyView, shadow: BodyView) -> bool:
        p, s = primary.body, shadow.body
        if p.data is not None and p.data == s.data and primary.content_encoding == shadow.content_encoding:
            return True  # identical: no decoding, no parsing
        if primary.content_encoding or shadow.content_encoding:
            return False  # the decoded size is unknown until decoded
        return max(p.size, s.size) <= self._offload_bytes

    async def _offloaded(self, primary: BodyView, shadow: BodyView, rules: RuleSet) -> BodyResult:
        loop = asyncio.get_running_loop()
        if self._pool is None:
            # Starting the worker blocks for tens of milliseconds: do it off the loop.
            pool = self._pool = self._new_pool()
            await asyncio.to_thread(lambda: pool.submit(_ready).result())
        job = loop.run_in_executor(self._pool, compare_bodies, primary, shadow, rules, self.limits)
        try:
            return await asyncio.wait_for(job, self._timeout)
        except asyncio.TimeoutError:
            self._kill()  # the worker is stuck on this input: replace it
            raise CompareFailed(f"comparison took longer than compare.timeout ({self._timeout} s)") from None
        except BrokenProcessPool:
            self._kill()
            raise CompareFailed("the comparison worker died") from None

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        # forkserver: a clean worker, not a fork of a process with a running event loop
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):  # no public way to stop a busy worker
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker at once, even mid-job: shutdown must not wait on a comparison."""
        self._kill()


def _ready() -> bool:
    return True
