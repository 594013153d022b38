"""The traffic listener: capture -> primary -> respond, and hand the copy to the mirror.

The handler runs on aiohttp's low-level server (no router, no middlewares): every
path is proxied, and no admin path exists on this port. One request flows one
way: capture (target, bounded body, headers) -> decide whether to mirror ->
open the primary -> dispatch the shadow copy -> stream the primary's answer to
the client -> hand the primary's observation to the waiting shadow task.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shadowdiff import headers as hdr, websocket
from shadowdiff.client import Response
from shadowdiff.config import Config
from shadowdiff.forward import BodyCapture, CapturedRequest, Observation, Upstream, UpstreamError, classify, describe
from shadowdiff.metrics import Metrics, method_label
from shadowdiff.mirror import Mirror
from shadowdiff.routing import RouteTable

# A primary that timed out is a 504; every other failure to answer is a 502.
_GATEWAY_STATUS = {"timeout": 504}
# A write this small to a client with nothing queued stays under the transport's
# high-water mark (64 KiB in asyncio and uvloop), so it cannot pause for drain.
_UNBLOCKED_WRITE = 16 * 1024


def _gateway_text(kind: str) -> str:
    return f"primary upstream failed: {kind}"


class ProxyResponse(web.StreamResponse):
    """A StreamResponse that adds nothing to the primary's headers.

    aiohttp fills in Date, Server and a default Content-Type, and drops
    Content-Length from 304 answers. For a relayed response those would be
    changes the primary never made, so they are undone right after aiohttp's
    header preparation (a private hook: pinned by the transparency tests).
    """

    _DEFAULTED = ("Date", "Server", "Content-Type")

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str], head_alone: bool = True) -> None:
        super().__init__(status=status, reason=reason)
        # aiohttp's switch: write the head at prepare(), or with the first body chunk.
        self._send_headers_immediately = head_alone
        self._headers = headers  # taken over, not copied: it was built for this response
        # Only what is needed to undo aiohttp's changes, not a copy of every header.
        self._absent = [name for name in self._DEFAULTED if name not in headers]
        self._content_length = headers.get("Content-Length")

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        headers = self.headers
        for name in self._absent:
            headers.popall(name, None)
        if self.status == 304 and self._content_length is not None and "Content-Length" not in headers:
            headers["Content-Length"] = self._content_length


def plain_response(status: int, text: str, *, close: bool = False) -> web.Response:
    """The proxy's own answer (errors, refusals): short plain text."""
    response = web.Response(status=status, text=text + "\n", content_type="text/plain")
    if close:
        response.force_close()
    return response


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
        config: Config,
        *,
        metrics: Metrics,
        routes: RouteTable,
        primary: Upstream,
        mirror: Mirror,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._routes = routes
        self._primary = primary
        self._mirror = mirror
        self._own_authorities = {str(config.listen.address)}

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        answer = _Answer()
        try:
            return await self._handle(request, answer)
        finally:
            if answer.status is not None:  # None: the client left before any answer
                self._metrics.requests.labels(answer.route, method_label(request.method), str(answer.status)).inc()

    async def _handle(self, request: web.BaseRequest, answer: _Answer) -> web.StreamResponse:
        if request.method == "CONNECT":
            return answer.refuse(405, "CONNECT is not supported: shadowdiff is a reverse proxy", close=True)
        target = self._origin_form(request)
        if target is None:
            return answer.refuse(400, "request target must be a path on this server")
        # URL.build, not URL(): "//host/x" is a path here, never an authority.
        path = URL.build(path=target.split("?", 1)[0], encoded=True).path
        answer.route = self._routes.route(path)

        if request.version < (1, 1) and "Transfer-Encoding" in request.headers:
            # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            return answer.refuse(400, "Transfer-Encoding is not allowed in HTTP/1.0", close=True)
        limit = self._config.listen.max_request_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return answer.refuse(413, f"request body over {limit} bytes", close=True)
        body: bytes | None = b""
        if request.body_exists:
            try:
                async with asyncio.timeout(self._config.listen.request_timeout):
                    body = await _read_body(request, limit)
            except HttpProcessingError as exc:  # bad chunk framing and the like
                return answer.refuse(400, f"malformed request body: {exc.message}", close=True)
            except TimeoutError:  # a client trickling its body holds nothing past the deadline
                return answer.refuse(408, "request body not received in time", close=True)
            if body is None:
                return answer.refuse(413, f"request body over {limit} bytes", close=True)

        captured = self._capture(request, target, path, answer.route, body)
        if websocket.is_websocket_upgrade(request):
            return await self._websocket(request, answer, captured)
        skip = self._mirror.policy.skip_reason(captured.method, path, request.headers, len(body))
        if skip is not None:
            self._metrics.mirror_skipped.labels(skip).inc()
        return await self._forward(request, answer, captured, mirror=skip is None)

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

    def _primary_failed(self, answer: _Answer, kind: str) -> web.Response:
        """Count a primary that gave no answer head, and tell the client: 504 for a timeout, else 502."""
        self._metrics.upstream_failed("primary", kind)
        return answer.refuse(_GATEWAY_STATUS.get(kind, 502), _gateway_text(kind))

    def _capture(self, request: web.BaseRequest, target: str, path: str, route: str, body: bytes) -> CapturedRequest:
        marker = self._config.mirror.marker_header
        headers = hdr.request_headers(hdr.decoded(request.raw_headers), marker_header=marker)
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
        self, request: web.BaseRequest, answer: _Answer, captured: CapturedRequest, *, mirror: bool
    ) -> web.StreamResponse:
        metrics, route = self._metrics, captured.route
        started = time.perf_counter()
        try:
            upstream = await self._primary.open(captured, CIMultiDict(captured.headers))
        except UpstreamError as exc:
            return self._primary_failed(answer, exc.kind)

        observed: asyncio.Future[Observation | None] | None = None
        if mirror:
            observed = asyncio.get_running_loop().create_future()
            if not self._mirror.dispatch(captured, observed):
                observed = None
        observation = None
        try:
            answer.status = upstream.status
            response, observation = await self._relay(request, upstream, started, keep=observed is not None)
            if response is None:  # a head aiohttp will not write: nothing was sent yet
                return answer.refuse(502, _gateway_text("protocol"))  # counted below, from the observation
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
            if observed is not None and not observed.done():  # done: the shadow task gave up waiting
                observed.set_result(observation)

    async def _relay(
        self, request: web.BaseRequest, upstream: Response, started: float, *, keep: bool
    ) -> tuple[web.StreamResponse | None, Observation | None]:
        """Stream the primary's answer to the client; observe it if the shadow waits.

        A None response means the head could not be relayed at all (the caller
        answers 502 instead).
        """
        reader = upstream.content
        response = ProxyResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=hdr.response_headers(hdr.decoded(upstream.raw_headers), version=tuple(request.version)),
            # Head and body in one write when the body (or its end) is already here; a
            # primary still silent after its head (an event stream) has its head relayed at once.
            head_alone=not (reader.total_bytes or reader.is_eof()),
        )
        if "Upgrade" in request.headers:
            # A declined upgrade (h2c): aiohttp would drop a request pipelined behind it,
            # so end the connection after this answer and let the client retry.
            response.force_close()
        capture = BodyCapture(self._config.compare.max_body_bytes if keep else 0)
        try:
            await response.prepare(request)
        except ConnectionError:
            return response, None  # the client left before the answer
        except ValueError as exc:  # control characters in a header: aiohttp refuses to write them
            return None, Observation("primary", time.perf_counter() - started, error="protocol", detail=describe(exc))
        transport = request.transport
        if transport is None:
            return response, None  # the client left before the answer
        while True:
            try:
                chunk = await reader.readany()
            except Exception as exc:  # the primary broke mid-body: never end it as complete
                _abort(request)
                return response, Observation("primary", time.perf_counter() - started, error=classify(exc), detail=describe(exc))
            if not chunk:
                break
            if keep:
                capture.feed(chunk)
            try:
                if len(chunk) <= _UNBLOCKED_WRITE and not transport.get_write_buffer_size():
                    # Nothing queued for the client, and this chunk is under the transport's
                    # pause mark: the write cannot wait, so no timer is needed.
                    await response.write(chunk)
                else:
                    # A client that stops reading would hold this connection and the
                    # primary's for ever: past idle_timeout without progress it is cut.
                    async with asyncio.timeout(self._config.listen.idle_timeout):
                        await response.write(chunk)
            except ConnectionError:
                return response, None  # the client left mid-body: nothing to compare
            except TimeoutError:
                _abort(request)
                return response, None
        body = capture.result() if keep else None
        observation = Observation(
            "primary",
            time.perf_counter() - started,
            status=upstream.status,
            reason=upstream.reason or "",
            headers=upstream.headers,
            body=body,
        )
        return response, observation

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



async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole request body, or None if it passes `limit` (reading stops there).

    A client waiting on `Expect: 100-continue` is told to go on first (aiohttp's
    low-level server leaves that to the handler); curl waits a second otherwise.
    """
    if request.version == (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the real response has not started
    chunks, size = [], 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _abort(request: web.BaseRequest) -> None:
    """Cut the client's connection so a short body is never taken as complete."""
    transport = request.transport
    if transport is not None:
        transport.abort()
