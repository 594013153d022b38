"""Runs comparisons without blocking the event loop.

Bodies that are byte-identical are settled inline at once. Small, unencoded bodies
(both up to `compare.offload_bytes`) are compared inline too, within a budget of
INLINE_STEPS steps (compare.budget: about 5 ms whatever the rules and the body,
benchmarks/inline_worst.py); a comparison that needs more is dropped there and made
in the worker instead. Anything larger, or compressed (a few KB of gzip can decode to
megabytes), goes to the comparison worker: one process (`experiment.worker_main`)
running the same pure function, one job at a time.

- A job's deadline (`compare.timeout`) starts when the worker starts it, not when
  it was queued; the worker's own start-up is not counted either.
- Only an overdue job is lost: its worker is killed and replaced, and the jobs
  behind it run on the new one.
- At most `compare.max_queued` jobs wait; past that a comparison is refused at once
  (`ComparisonQueueFull`, counted by the caller as `compare_queue_full`).
- A comparison that cannot be made (deadline passed, worker died, engine raised) is
  `CompareFailed`, counted by the caller, never retried on the event loop.
- The worker redacts and cuts the body differences it finds (`Redactor.difference`)
  before it sends them back: a large value is never unpickled or scrubbed on the loop.
- `Comparison.duration` is the time spent comparing: inline, or in the worker (its
  own measure), plus the status and header step; queueing excluded.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque

from shadowdiff import frames
from shadowdiff.compare.body import BodyResult, BodyView, Limits, compare_bodies
from shadowdiff.compare.budget import OverBudget
from shadowdiff.compare.engine import assemble, views
from shadowdiff.compare.rules import RuleSet
from shadowdiff.config import CompareConfig
from shadowdiff.model import SHADOW_ERROR, Comparison, Exchange
from shadowdiff.publish.redact import Redaction, Redactor

# Steps (about a microsecond each, see compare.budget) an inline comparison may take.
INLINE_STEPS = 4000
START_DEADLINE = 30.0  # seconds for a new worker process to say it is ready
RESTART_PAUSE = 5.0  # seconds before a worker that could not start is tried again
_WORKER = (sys.executable, "-m", "shadowdiff.experiment.worker_main")


class CompareFailed(Exception):
    """The comparison could not be made; `reason` is one of metrics.COMPARE_FAILURE_REASONS."""

    def __init__(self, message: str, reason: str = "engine_error") -> None:
        super().__init__(message)
        self.reason = reason


class ComparisonQueueFull(Exception):
    """compare.max_queued jobs are already waiting for the comparison worker."""


_Work = tuple[BodyView, BodyView, RuleSet, Limits, Redactor]
_Job = tuple[_Work, "asyncio.Future[tuple[BodyResult, float]]"]


class Comparator:
    def __init__(self, config: CompareConfig, redactor: Redactor | None = None) -> None:
        self.configure(config)
        # The publish pipeline's redactor (ShadowDiff sets both together), for the worker's results.
        self.redactor = redactor or Redactor(Redaction())
        self._queue: deque[_Job] = deque()
        self._runner: asyncio.Task[None] | None = None
        self._busy = False  # the worker has a job
        self._down_until = 0.0  # loop time before which no new worker is started
        self._process: asyncio.subprocess.Process | None = None

    def configure(self, config: CompareConfig) -> None:
        """Take new settings (a live config change): from the next comparison on."""
        self.limits = Limits(max_decoded_bytes=config.max_decoded_bytes, max_differences=config.max_differences)
        self._inline_limits = Limits(config.max_decoded_bytes, config.max_differences, steps=INLINE_STEPS)
        self._offload_bytes = config.offload_bytes
        self._timeout = config.timeout
        self._max_queued = config.max_queued

    @property
    def worker_pid(self) -> int | None:
        """The comparison worker's process id, None while there is none."""
        return self._process.pid if self._process is not None else None

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker (the one it runs excluded)."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether the worker has a job right now."""
        return self._busy

    def compare_now(self, exchange: Exchange, lane: str, rules: RuleSet) -> Comparison | None:
        """The comparison, when it is made on the event loop (identical, or small and unencoded
        bodies within the inline budget: no coroutine, no wait); None when it belongs to the
        worker (then `compare(..., inline=False)`). Raises CompareFailed if the engine fails."""
        candidate = exchange.candidates[lane]
        if not candidate.ok:
            return Comparison(exchange, lane, SHADOW_ERROR)
        control_view, candidate_view = views(exchange, lane)
        if not self._inline(control_view, candidate_view):
            return None
        try:
            started = time.perf_counter()
            body = compare_bodies(control_view, candidate_view, rules, self._inline_limits)
            comparison = assemble(exchange, lane, rules, self.limits, body)
        except OverBudget:  # more work than the loop may spend: the worker makes it from the start
            return None
        except Exception as exc:  # a bug or an input the engine cannot take: data, not a crash
            raise CompareFailed(f"{type(exc).__name__}: {exc}") from exc
        comparison.duration = time.perf_counter() - started
        return comparison

    async def compare(
        self, exchange: Exchange, lane: str, rules: RuleSet, *, inline: bool = True, spare: bool = False
    ) -> Comparison:
        """The control compared with `lane`, inline or in the worker (`inline=False`: in the worker,
        compare_now() having said so). `spare`: a comparison that may use only the queue's first
        half (A/A evidence: it must not crowd the shadow's out). Raises CompareFailed or
        ComparisonQueueFull, nothing else."""
        if inline:
            comparison = self.compare_now(exchange, lane, rules)
            if comparison is not None:
                return comparison
        control_view, candidate_view = views(exchange, lane)
        body, spent = await self._offloaded(control_view, candidate_view, rules, spare=spare)
        try:
            started = time.perf_counter()
            comparison = assemble(exchange, lane, rules, self.limits, body)
        except Exception as exc:
            raise CompareFailed(f"{type(exc).__name__}: {exc}") from exc
        comparison.duration = spent + time.perf_counter() - started
        return comparison

    def _inline(self, control: BodyView, candidate: BodyView) -> bool:
        p, s = control.body, candidate.body
        if p.data is not None and p.data == s.data and control.content_encoding == candidate.content_encoding:
            return True  # identical: no decoding, no parsing
        if control.content_encoding or candidate.content_encoding:
            return False  # the decoded size is unknown until decoded
        return max(p.size, s.size) <= self._offload_bytes

    async def _offloaded(
        self, control: BodyView, candidate: BodyView, rules: RuleSet, *, spare: bool = False
    ) -> tuple[BodyResult, float]:
        # What waits is the queue, less the job about to start when the worker is idle.
        room = self._max_queued // 2 if spare else self._max_queued
        if len(self._queue) >= room + (0 if self._busy else 1):
            raise ComparisonQueueFull(f"{len(self._queue)} comparisons already wait for the worker (compare.max_queued)")
        future: asyncio.Future[tuple[BodyResult, float]] = asyncio.get_running_loop().create_future()
        self._queue.append(((control, candidate, rules, self.limits, self.redactor), future))
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run_queue(), name="comparison worker")
        return await future

    async def _run_queue(self) -> None:
        """Hand queued jobs to the worker one at a time, until none is left."""
        future = None
        try:
            while self._queue:
                job, future = self._queue.popleft()
                if future.done():  # its experiment was cancelled (shutdown) while it waited
                    continue
                self._busy = True
                try:
                    result = await self._run(job)
                except Exception as exc:  # CompareFailed, or the worker could not even start
                    failure = exc if isinstance(exc, CompareFailed) else CompareFailed(f"{type(exc).__name__}: {exc}", "worker_unavailable")
                    if not future.done():
                        future.set_exception(failure)
                else:
                    if not future.done():
                        future.set_result(result)
                finally:
                    self._busy = False
        finally:
            self._runner = None
            if future is not None and not future.done():  # cancelled mid-job (close())
                future.cancel()

    async def _run(self, job: _Work) -> tuple[BodyResult, float]:
        process = await self._worker()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(frames.encode(job))
            async with asyncio.timeout(self._timeout):  # from the job's start: queueing is not counted
                await process.stdin.drain()
                reply = await frames.read(process.stdout)
        except TimeoutError:
            await self._kill()  # the worker is stuck on this input: replace it
            raise CompareFailed(f"comparison took longer than compare.timeout ({self._timeout} s)", "timeout") from None
        except Exception:  # EOF, a broken pipe, a frame cut or garbled: the worker is gone
            await self._kill()
            raise CompareFailed("the comparison worker died", "worker_died") from None
        if reply[0] == "ok":
            return reply[1], reply[2]
        raise CompareFailed(reply[1])

    async def _worker(self) -> asyncio.subprocess.Process:
        """The running worker, or a new one once it says it is ready. A worker that could
        not start is not tried again for RESTART_PAUSE seconds: jobs fail at once meanwhile."""
        if self._process is not None and self._process.returncode is None:
            return self._process
        await self._kill()
        loop = asyncio.get_running_loop()
        if loop.time() < self._down_until:
            raise CompareFailed("the comparison worker could not start; trying again shortly", "worker_unavailable")
        # Its own session: a Ctrl-C in the terminal is the proxy's to handle, not the worker's.
        process = await asyncio.create_subprocess_exec(
            *_WORKER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True
        )
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_DEADLINE):
                ready = await frames.read(process.stdout)
        except Exception:  # silent, dead, or not speaking our frames
            ready = None
        except BaseException:  # cancelled while it started (shutdown): it must not outlive us
            process.kill()
            await asyncio.shield(process.wait())
            raise
        if ready != ("ready",):
            process.kill()
            await process.wait()
            self._down_until = loop.time() + RESTART_PAUSE
            raise CompareFailed("the comparison worker did not start", "worker_unavailable")
        self._process = process
        return process

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def close(self) -> None:
        """Stop the worker at once, even mid-job: shutdown must not wait on a comparison."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
        await self._kill()
