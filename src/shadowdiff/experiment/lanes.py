"""A lane: one background leg of every experiment, under its own bounds.

The shadow is a lane today; a secondary, a re-ask of the primary or a second
candidate will be lanes too. Each has its own upstream (so its own connection pool
and deadlines), its own circuit breaker and its own in-flight cap, and marks its
copy the same way. Past a bound a copy is dropped and the reason reported to the
lane's `on_skip` (for the shadow: `shadowdiff_mirror_skipped_total`), never queued.
"""

from __future__ import annotations

from collections.abc import Callable

from multidict import CIMultiDict

from shadowdiff.experiment.breaker import Breaker
from shadowdiff.http.upstream import Upstream
from shadowdiff.metrics import Metrics
from shadowdiff.model import BufferAccount, CapturedRequest, Observation


class Lane:
    def __init__(
        self,
        name: str,
        upstream: Upstream,
        *,
        max_in_flight: int,
        breaker: Breaker,
        marker: tuple[str, str],
        client_host: bool,
        metrics: Metrics,
        on_skip: Callable[[str], None],
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.max_in_flight = max_in_flight
        self.breaker = breaker
        self._marker_header, self._marker_value = marker
        self._client_host = client_host  # send the client's Host (else the upstream's own authority)
        self._metrics = metrics
        self.on_skip = on_skip
        self.in_flight = 0

    def admit(self) -> bool:
        """Take a slot for one copy, or say why not (at the cap, or the lane is failing)."""
        if self.in_flight >= self.max_in_flight:
            self.on_skip("overload")
            return False
        if not self.breaker.allow():
            self.on_skip(f"{self.name}_unhealthy")
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def headers_for(self, request: CapturedRequest) -> CIMultiDict[str]:
        """The primary's request headers, marked as a copy, with the Host policy applied."""
        headers = CIMultiDict(request.headers)
        headers[self._marker_header] = self._marker_value
        if self._client_host and request.client_host:
            headers["Host"] = request.client_host
        else:
            headers.popall("Host", None)  # the upstream URL's own authority is sent
        return headers

    async def send(self, request: CapturedRequest, *, body_limit: int, budget: BufferAccount | None = None) -> Observation:
        """The lane's answer to `request` (never raises); counted, and told to the breaker."""
        observation = await self.upstream.observe(
            request, self.headers_for(request), lane=self.name, body_limit=body_limit, budget=budget
        )
        return self.observed(request, observation)

    def observed(self, request: CapturedRequest, observation: Observation) -> Observation:
        """Count the lane's answer and tell the breaker (`send()` does; the one-lane path calls it itself)."""
        self.breaker.record(observation.ok)
        if observation.ok:
            assert observation.status is not None
            self._metrics.upstream_answered(self.name, request.route, observation.status, observation.elapsed)
        else:
            self._metrics.upstream_failed(self.name, observation.error or "protocol")
        return observation
