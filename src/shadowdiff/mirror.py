"""Whether to shadow a request (cheap, synchronous) and the bounded dispatch.

`MirrorPolicy.skip_reason()` answers before the primary is contacted: mirroring
off, method not allowed, path filtered, body too large, sampled out. The
in-flight cap is checked at dispatch, once the primary's response head is in:
a request whose primary cannot answer sends nothing to the shadow.

`Mirror.dispatch()` never waits and never raises. Past the cap the copy is
dropped and counted as `overload`; otherwise one background task sends the
copy, waits for the primary's observation, compares and publishes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import random
import re
import time
from collections.abc import Callable

from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.compare import Exchange
from shadowdiff import log
from shadowdiff.breaker import Breaker
from shadowdiff.comparator import CompareFailed, Comparator
from shadowdiff.config import MirrorConfig, ShadowConfig
from shadowdiff.forward import CapturedRequest, Observation, Upstream
from shadowdiff.metrics import Metrics
from shadowdiff.publish import Publisher
from shadowdiff.tasks import TaskSet

_SAMPLE_SCALE = 2**64


def _globs(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def sample_point(key: str) -> float:
    """A stable point in [0, 1) for a sampling key: the same key, the same decision."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SAMPLE_SCALE


class MirrorPolicy:
    def __init__(self, config: MirrorConfig, *, rng: Callable[[], float] = random.random) -> None:
        self._config = config
        self._methods = frozenset(config.methods)
        self._include = _globs(config.include_paths)
        self._exclude = _globs(config.exclude_paths)
        self._rng = rng

    def skip_reason(self, method: str, path: str, headers: CIMultiDictProxy[str], body_size: int) -> str | None:
        """None to mirror, else the `mirror_skipped_total` reason."""
        config = self._config
        if not config.enabled:
            return "paused"
        if method not in self._methods:
            return "method"
        if self._include is not None and not self._include.match(path):
            return "filtered"
        if self._exclude is not None and self._exclude.match(path):
            return "filtered"
        if body_size > config.max_body_bytes:
            return "body_too_large"
        rate = config.sample_rate
        if rate >= 1.0:
            return None
        key = headers.get(config.sample_key) if config.sample_key else None
        point = sample_point(key) if key is not None else self._rng()
        return None if point < rate else "sampled_out"


class Mirror:
    """Sends shadow copies in the background, at most `max_in_flight` at a time."""

    def __init__(
        self,
        mirror_config: MirrorConfig,
        shadow_config: ShadowConfig,
        *,
        shadow: Upstream,
        metrics: Metrics,
        publisher: Publisher,
        comparator: Comparator,
        compare_body_bytes: int,
    ) -> None:
        self.policy = MirrorPolicy(mirror_config)
        self._config = mirror_config
        self._host_policy = shadow_config.host_header
        self._shadow = shadow
        self._metrics = metrics
        self._publisher = publisher
        self._comparator = comparator
        self._body_limit = compare_body_bytes
        self._tasks = TaskSet()
        self.breaker = Breaker(mirror_config.breaker_failures, mirror_config.breaker_cooldown)
        self._primary_wait = shadow_config.timeout
        self.in_flight = 0
        metrics.watch_in_flight(lambda: self.in_flight)  # read when needed, not written per request

    def dispatch(self, request: CapturedRequest, primary: asyncio.Future[Observation | None]) -> bool:
        """Start the shadow exchange for `request`, or drop it when at the cap or the shadow is failing."""
        if self.in_flight >= self._config.max_in_flight:
            self._metrics.mirror_skipped.labels("overload").inc()
            return False
        if not self.breaker.allow():
            self._metrics.mirror_skipped.labels("shadow_unhealthy").inc()
            return False
        self.in_flight += 1
        task = self._tasks.spawn(self._run(request, primary), name=f"shadow {request.request_id}")
        task.add_done_callback(self._release)  # runs even for a task cancelled before it started
        return True

    def _release(self, task: asyncio.Task[None]) -> None:
        self.in_flight -= 1

    async def drain(self, timeout: float | None = None) -> int:
        """Wait for shadow work (up to `mirror.drain_timeout`), cancel what is left."""
        return await self._tasks.drain(self._config.drain_timeout if timeout is None else timeout)

    def shadow_headers(self, request: CapturedRequest) -> CIMultiDict[str]:
        """The primary's request headers, marked as a copy, with the Host policy applied."""
        headers = CIMultiDict(request.headers)
        headers[self._config.marker_header] = self._config.marker_value
        if self._host_policy == "own" or not request.client_host:
            headers.popall("Host", None)  # aiohttp sends the shadow URL's own authority
        else:
            headers["Host"] = request.client_host
        return headers

    async def _run(self, request: CapturedRequest, primary: asyncio.Future[Observation | None]) -> None:
        metrics = self._metrics
        shadow = await self._shadow.observe(request, self.shadow_headers(request), body_limit=self._body_limit)
        self.breaker.record(shadow.ok)
        if shadow.ok:
            assert shadow.status is not None
            metrics.upstream_answered("shadow", request.route, shadow.status, shadow.elapsed)
        else:
            metrics.upstream_failed("shadow", shadow.error or "protocol")
        if not primary.done():
            try:
                # A slot is not held for a primary that streams on and on (downloads, event
                # streams): past the deadline the exchange is given up (the future is
                # cancelled, which the relay checks), and counted.
                async with asyncio.timeout(self._primary_wait):
                    await primary
            except TimeoutError:
                metrics.mirror_skipped.labels("primary_unfinished").inc()
                return
        primary_observation = primary.result()
        if primary_observation is None or not primary_observation.ok:
            return  # the primary's failure is counted on its own, never compared
        started = time.perf_counter()
        try:
            comparison = await self._comparator.compare(Exchange(request, primary_observation, shadow))
        except CompareFailed as exc:
            # Neither mirrored nor an outcome: counted on its own, one line, no traceback flood.
            metrics.compare_failures.inc()
            log.event("error", "compare_failed", request_id=request.request_id, route=request.route, error=str(exc)[:300])
            return
        metrics.mirrored.labels(request.route).inc()  # with its outcome, so the two always agree
        self._publisher.publish(comparison, time.perf_counter() - started)
