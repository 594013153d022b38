"""A lane: one background leg of every experiment, under its own bounds.

The shadow is a lane; so are the A/A lanes of noise detection: the secondary (a
second instance of the primary's version) and the re-ask (the primary asked once
more). Each has its own upstream (so its own connection pool and deadlines), its
own circuit breaker and its own in-flight cap. Past a bound a copy is dropped and
the reason reported to the lane's `on_skip` (for the shadow:
`shadowdiff_mirror_skipped_total`; for A/A lanes: `shadowdiff_aa_skipped_total`),
never queued.

Copies to a shadow or a secondary carry the marker header; a re-ask does not (the
marker never reaches the primary), but it carries the original's X-Request-Id, so
the primary's own logs can tell it apart. `accepts` narrows which requests a lane
takes (the re-ask: a sample of GET and HEAD).
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
        marker: tuple[str, str] | None,
        client_host: bool,
        metrics: Metrics,
        on_skip: Callable[[str], None],
        accepts: Callable[[CapturedRequest], bool] | None = None,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.max_in_flight = max_in_flight
        self.breaker = breaker
        self._marker = marker
        self._client_host = client_host  # send the client's Host (else the upstream's own authority)
        # The Host its answers are written for when it is not the client's (Observation.host).
        self.host = "" if client_host else upstream.authority
        self._metrics = metrics
        self.on_skip = on_skip
        self.accepts = accepts
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
        """The primary's request headers, marked as a copy (but for the primary), with the Host policy applied."""
        headers = CIMultiDict(request.headers)
        if self._marker is not None:
            headers[self._marker[0]] = self._marker[1]
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
        if self.host and request.client_host:
            observation.host = self.host
        if observation.ok:
            assert observation.status is not None
            self._metrics.upstream_answered(self.name, request.route, observation.status, observation.elapsed)
        else:
            self._metrics.upstream_failed(self.name, observation.error or "protocol")
        return observation
