"""The traffic handler: capture -> primary -> respond, and start the experiment.

It runs on aiohttp's low-level server (no router, no middlewares): every path is
proxied, and no admin path exists on this port. One request flows one way:
capture (target, headers, the body as far as it must be read) -> decide whether to
mirror -> open the primary -> start the experiment on its lanes -> stream the
primary's answer to the client -> deliver the primary's observation to the
experiment. Each request reads the runtime snapshot once, at its start.
"""

from __future__ import annotations

import time

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shadowdiff.buffers import BufferBudget
from shadowdiff.experiment.mirror import Experiment, Mirror
from shadowdiff.http import forwarding as hdr
from shadowdiff.http.client import BodyFailed
from shadowdiff.http.errors import UpstreamError
from shadowdiff.http.upstream import Upstream
from shadowdiff.metrics import Metrics, method_label
from shadowdiff.model import CapturedRequest, Observation
from shadowdiff.proxy import request_body as bodies, websocket
from shadowdiff.proxy.relay import relay
from shadowdiff.proxy.response import ProxyResponse, gateway_status, gateway_text, plain_response
from shadowdiff.runtime import Runtime, RuntimeHolder


class _Answer:
    """Per-request state the handler fills in for the requests_total counter."""

    __slots__ = ("route", "status")

    def __init__(self) -> None:
        self.route = "other"
        self.status: int | None = None

    def refuse(self, status: int, text: str, *, close: bool = False) -> web.Response:
        self.status = status
        return plain_response(status, text, close=close)


class Proxy:
    """The catch-all handler for the traffic port."""

    def __init__(
        self,
        runtime: RuntimeHolder,
        *,
        metrics: Metrics,
        primary: Upstream,
        mirror: Mirror,
        budget: BufferBudget,
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._primary = primary
        self._mirror = mirror
        self._budget = budget
        self._own_authorities = {str(runtime.current.config.listen.address)}
        self._trusted = hdr.TrustedPeers(runtime.current.config.listen.trusted_proxies)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        answer = _Answer()
        try:
            return await self._handle(request, answer, self._runtime.current)
        finally:
            if answer.status is not None:  # None: the client left before any answer
                self._metrics.requests.labels(answer.route, method_label(request.method), str(answer.status)).inc()

    async def _handle(self, request: web.BaseRequest, answer: _Answer, runtime: Runtime) -> web.StreamResponse:
        config = runtime.config
        if request.method == "CONNECT":
            return answer.refuse(405, "CONNECT is not supported: shadowdiff is a reverse proxy", close=True)
        hosts = request.headers.getall("Host", ())
        if len(hosts) > 1 or not (hdr.valid_host(hosts[0]) if hosts else request.version < (1, 1)):
            # RFC 9112 §3.2: exactly one Host, a valid authority (no userinfo, no spaces).
            return answer.refuse(400, "request needs one valid Host header", close=True)
        target = self._origin_form(request)
        if target is None:
            return answer.refuse(400, "request target must be a path on this server")
        # URL.build, not URL(): "//host/x" is a path here, never an authority.
        path = URL.build(path=target.split("?", 1)[0], encoded=True).path
        answer.route = runtime.routes.route(path)

        if request.version < (1, 1) and "Transfer-Encoding" in request.headers:
            # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            return answer.refuse(400, "Transfer-Encoding is not allowed in HTTP/1.0", close=True)
        limit = config.listen.max_request_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return answer.refuse(413, f"request body over {limit} bytes", close=True)
        if websocket.is_websocket_upgrade(request):
            captured = self._capture(request, target, path, answer.route, b"", config.mirror.marker_header)
            return await self._websocket(request, answer, captured)

        has_body = request.body_exists
        size = (request.content_length or 0) if has_body else 0
        skip = runtime.policy.skip_reason(request.method, path, request.headers, size)
        received = bodies.NO_BODY
        if has_body:
            try:
                received = await bodies.receive(
                    request,
                    mirror=skip is None,
                    mirror_limit=runtime.policy.max_body_bytes,
                    limit=limit,
                    timeout=config.listen.request_timeout,
                    budget=self._budget,
                )
            except BodyFailed as exc:
                return self._body_failed(answer, exc)
            skip = skip or received.skip
        if skip is not None:
            self._metrics.mirror_skipped.labels(skip).inc()
        captured = self._capture(request, target, path, answer.route, received.body, config.mirror.marker_header)
        return await self._forward(request, answer, captured, runtime, received, mirror=skip is None)

    async def _websocket(self, request: web.BaseRequest, answer: _Answer, captured: CapturedRequest) -> web.StreamResponse:
        try:
            response = await websocket.relay(request, captured, self._primary)
        except websocket.Refused as exc:  # the primary answered, and said no: the client hears it
            answer.status = exc.status
            refusal = ProxyResponse(
                status=exc.status, reason=None, headers=hdr.response_headers(list(exc.headers.items()), version=tuple(request.version))
            )
            refusal.force_close()
            return refusal
        except UpstreamError as exc:
            return self._primary_failed(answer, exc.kind)
        answer.status = 101
        return response

    @staticmethod
    def _body_failed(answer: _Answer, exc: BodyFailed) -> web.Response:
        """The client's body failed: its answer (408, 413, 400); no count if the client left."""
        if exc.status is None:
            return plain_response(400, exc.text, close=True)  # nobody reads it: not counted
        return answer.refuse(exc.status, exc.text, close=True)

    def _primary_failed(self, answer: _Answer, kind: str) -> web.Response:
        """Count a primary that gave no answer head, and tell the client: 504 for a timeout, else 502."""
        self._metrics.upstream_failed("primary", kind)
        return answer.refuse(gateway_status(kind), gateway_text(kind))

    def _capture(self, request: web.BaseRequest, target: str, path: str, route: str, body: bytes, marker: str) -> CapturedRequest:
        trusted = self._trusted.trusts(request.remote)
        headers = hdr.request_headers(hdr.decoded(request.raw_headers), marker_header=marker, trusted=trusted)
        request_id = hdr.request_id(headers)
        headers[hdr.REQUEST_ID] = request_id
        hdr.add_forwarding(headers, client_ip=request.remote, proto=request.scheme, version=tuple(request.version))
        return CapturedRequest(
            method=request.method,
            target=target,
            path=path,
            route=route,
            request_id=request_id,
            headers=CIMultiDictProxy(headers),
            body=body,
            client_host=request.headers.get("Host", ""),
        )

    async def _forward(
        self,
        request: web.BaseRequest,
        answer: _Answer,
        captured: CapturedRequest,
        runtime: Runtime,
        received: bodies.Received,
        *,
        mirror: bool,
    ) -> web.StreamResponse:
        metrics, route, config = self._metrics, captured.route, runtime.config
        budget, held = self._budget, received.held
        experiment: Experiment | None = None
        stream = received.stream
        started = time.perf_counter()
        try:
            try:
                upstream = await self._primary.open(
                    captured, CIMultiDict(captured.headers), streamed=stream.streamed if stream is not None else None
                )
            except BodyFailed as exc:  # the client's body failed on its way to the primary
                return self._body_failed(answer, exc)
            except UpstreamError as exc:
                return self._primary_failed(answer, exc.kind)
            head_elapsed = time.perf_counter() - started
            if mirror:
                experiment = self._mirror.start(
                    captured,
                    rules=runtime.rules.for_route(route),
                    body_limit=config.compare.max_body_bytes,
                    control_wait=config.shadow.timeout,
                    held=held,
                )
            observation: Observation | None = None
            try:
                answer.status = upstream.status
                response, observation = await relay(
                    request,
                    upstream,
                    started=started,
                    head_elapsed=head_elapsed,
                    experiment=experiment,
                    capture_limit=config.compare.max_body_bytes,
                    idle_timeout=config.listen.idle_timeout,
                    # A declined upgrade (h2c): aiohttp would drop a request pipelined behind
                    # it; a body the primary stopped taking: its rest is still on the wire.
                    close="Upgrade" in request.headers or (stream is not None and not stream.finished),
                )
                if response is None:  # a head aiohttp will not write: nothing was sent yet
                    return answer.refuse(502, gateway_text("protocol"))  # counted below, from the observation
                return response
            finally:
                if observation is not None and observation.ok:
                    upstream.release()  # fully read: the connection goes back to the pool
                else:
                    upstream.close()  # part of a body is still on the wire
                if observation is not None:
                    if observation.ok:
                        metrics.upstream_answered("primary", route, upstream.status, observation.elapsed)
                    else:
                        metrics.upstream_failed("primary", observation.error or "protocol")
                if experiment is not None:
                    experiment.deliver(observation)
        finally:
            if experiment is None and held:
                budget.give(held)

    def _origin_form(self, request: web.BaseRequest) -> str | None:
        """The origin-form target (path and query, as sent), or None to refuse.

        An absolute-form target is accepted only when its authority is this
        proxy (the Host the client sent, or the listen address); the upstream
        host always comes from the config, never from the request.
        """
        raw = request.raw_path
        if raw.startswith("/"):
            return raw
        if "://" not in raw:
            return None  # asterisk-form or garbage
        scheme, _, rest = raw.partition("://")
        authority, slash, tail = rest.partition("/")
        if scheme.lower() not in ("http", "https"):
            return None
        ours = self._own_authorities | {request.headers.get("Host", "").lower()}
        if authority.lower() not in ours:
            return None
        return "/" + tail if slash else "/"
