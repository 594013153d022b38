"""Every use of aiohttp's private surface, in one place.

shadowdiff relies on a few aiohttp internals that its public API does not offer: the
client protocol and header serializer (for the lean pooled client), two hooks of the
low-level server (for the connection cap), three of StreamResponse (for a relayed
response that adds nothing), and the writer's byte count (for `100 Continue`). They
are named here and nowhere else, and `tests/http/test_aiohttp_contract.py` checks
each one (names, signatures, attributes) against the installed aiohttp, so an
aiohttp that changed them fails loudly in the suite, not quietly in production.
pyproject.toml pins a compatible range (`aiohttp~=3.14.5`) for the same reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import _ErrInfo
from multidict import CIMultiDict

__all__ = [
    "ClientProtocol", "Connection", "Edge", "HeadTooLarge", "OwnResponse", "RawResponseMessage",
    "RelayedResponse", "Server", "StreamReader", "drain", "has_answer", "head_too_large",
    "request_head_too_large", "serialize_head", "write_interim",
]  # fmt: skip

# -- the client side -------------------------------------------------------------


class ClientProtocol(ResponseHandler):
    """aiohttp's client protocol (with the C llhttp parser and read timeouts), remembering
    how its response parser was set up, and whether the upstream sent anything while the
    connection sat idle in the pool (it is then never reused: those bytes would be taken
    for the start of the next answer)."""

    skip_payload: bool | None = None  # None: no parser yet
    applied_timeout: float | None = None  # the read timeout last given to the parser
    idle = False
    spoke_while_idle = False

    def data_received(self, data: bytes) -> None:
        if self.idle:
            self.spoke_while_idle = True
        super().data_received(data)


# serialize_head(request_line, headers) -> bytes: a request head as aiohttp's client writes
# it; refuses CR, LF and NUL in headers (ValueError). Bound, not wrapped: it runs per request.
serialize_head = _serialize_headers


async def drain(protocol: ClientProtocol) -> None:
    """Wait until the transport's write buffer is under its high-water mark again."""
    await protocol._drain_helper()


def has_answer(protocol: ClientProtocol) -> bool:
    """Whether a final response head (not a 1xx) or an error is already waiting to be read.

    Reads the protocol's queue of parsed (message, payload) pairs, DataQueue._buffer.
    """
    if protocol.exception() is not None:
        return True
    for (message, _payload), _size in protocol._buffer:
        if message.code >= 200 or message.code == 101:
            return True
    return False


def head_too_large(exc: BaseException) -> bool:
    """A response head past the parser's limits: LineTooLong's or the header count's text,
    kept when aiohttp re-raises it as its base class (client protocol) or as
    ClientResponseError (WebSockets)."""
    message = str(getattr(exc, "message", "") or "")
    return "Got more than" in message or "Too many headers" in message


# -- the server side -------------------------------------------------------------


class HeadTooLarge(HttpProcessingError):
    """A request head past the proxy's byte budget (the edge's own parser rejection)."""

    def __init__(self) -> None:
        super().__init__(code=431, message="request head too large")


def request_head_too_large(exc: BaseException | None) -> bool:
    """A request head refused for its size: ours, or aiohttp's line length or header count."""
    return isinstance(exc, (HeadTooLarge, LineTooLong)) or (
        isinstance(exc, BadHttpMessage) and "Too many headers" in str(exc.message)
    )


class Edge:
    """What a Connection tells, and asks, the listener that owns it (proxy/edge.py).

    `waiting(conn)`: nothing of it is being handled; a head is due (fresh, idle, or part
    received). `busy(conn)`: a whole head arrived (or the connection is refused).
    `gone(conn)`: closed. `error_page(status)`: the proxy's own answer for a refusal.
    """

    head_limit = 0  # 0: no byte budget for a head

    def waiting(self, conn: Connection) -> None:
        pass

    def busy(self, conn: Connection) -> None:
        pass

    def gone(self, conn: Connection) -> None:
        pass

    def error_page(self, status: int) -> web.StreamResponse:
        return web.Response(status=status)


# What a chunked body's end may add to a read besides its data (chunk sizes, the last chunk,
# CRLFs): up to this, bytes after it are not taken for the start of a head's deadline.
_FRAMING_SLACK = 64


class Connection(web.RequestHandler):
    """aiohttp's server protocol, counting the bytes of request heads as they arrive.

    While a head is incomplete every chunk is measured (one `bytes.find` for the end of
    the head) before the parser sees it: a head that would pass `edge.head_limit`
    (together with complete heads still queued, unanswered, behind a busy handler) is
    answered 431 and nothing more is read. Body bytes are not counted. Parser rejections
    and handler failures are answered with `edge.error_page(status)`: aiohttp's own pages
    echo the parser's message and carry a `Server` header.
    """

    __slots__ = ("edge", "head_since", "head_bytes", "_queued", "_body", "_body_sized", "_refused", "evicted")

    def __init__(self, manager: web.Server, *, edge: Edge, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.edge = edge
        # When the deadline for the head being received started (the connection's start,
        # or the first byte of a head on a kept-alive one); None while none is due.
        self.head_since: float | None = None
        self.head_bytes = 0  # bytes of the incomplete head
        self._queued = 0  # bytes of complete heads the handler has not taken yet
        self._body: StreamReader | None = None  # a request body still arriving
        self._body_sized = True  # it has a Content-Length (not chunked)
        self._refused = False
        self.evicted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_since = self._loop.time()
        self.edge.waiting(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.edge.gone(self)
        super().connection_lost(exc)

    @property
    def in_progress(self) -> bool:
        """A request is being handled, queued, or its body is still arriving."""
        return bool(self._request_in_progress or self._messages or self._body is not None)

    def drop(self, answer: bytes) -> None:
        """Close now (write `answer` first if any): for a connection not `in_progress`."""
        if self.transport is not None and answer:
            self.transport.write(answer)
        self.force_close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._payload_parser is not None or self._upgraded or self._force_close or self._close:
            super().data_received(data)
            return
        body = self._body
        if body is not None:
            before, taken = self._request_count, body.total_bytes
            super().data_received(data)
            if body.is_eof():
                self._body = None
                # What came after the body's end is the start of the next head, counted like
                # any (chunked framing is counted with it: a few bytes too many, never too few).
                rest = max(0, len(data) - (body.total_bytes - taken))
                if self._request_count != before:  # a head pipelined behind the body, parsed already
                    if rest > self.edge.head_limit > 0:  # past the bound: it is not handled, but refused
                        new = self._request_count - before
                        for _ in range(new):
                            self._messages.pop()
                        self._request_count = before
                        self._too_large()
                        return
                    self._heads_done(data[len(data) - rest :], rest)
                    return
                if rest:  # after a chunked body its framing is counted too: a few bytes too many
                    self.head_bytes += rest
                    if self._body_sized or rest > _FRAMING_SLACK:  # a head has begun (not just framing)
                        self.head_since = self._loop.time()
                    if self.head_bytes + self._queued > self.edge.head_limit > 0:
                        self._too_large()
                        return
                if not self._request_in_progress and not self._messages:
                    self.edge.waiting(self)  # a refused body drained (lingering): idle again
            return
        if self._queued and not self._messages:
            self._queued = 0  # the handler took them
        end = data.find(b"\r\n\r\n")
        used = len(data) if end < 0 else end + 4
        if self.head_bytes + self._queued + used > self.edge.head_limit > 0:
            # Unless the head's last CRLF CRLF straddles the previous chunk: feed at most its
            # last three bytes, and see whether the parser completes a head with them.
            before = self._request_count
            super().data_received(data[:3])
            if self._request_count == before:
                self._too_large()
                return
            self._heads_done(data[:3], 3)
            self.data_received(data[3:])
            return
        if self.head_since is None and data:
            self.head_since = self._loop.time()
        before = self._request_count
        super().data_received(data)
        if self._request_count == before:
            self.head_bytes += len(data)
        else:
            self._heads_done(data, used)

    def _heads_done(self, data: bytes, used: int) -> None:
        """One or more heads completed in `data`; the last one's body may follow."""
        message, payload = self._messages[-1]
        self.edge.busy(self)
        if isinstance(message, _ErrInfo):  # a parser rejection: answered, then closed
            self._refused = True
            return
        trailing = 0
        if not payload.is_eof():
            self._body = payload
            self._body_sized = not message.chunked
        elif payload is EMPTY_PAYLOAD and data:
            # The bytes after the last head's end start the next head (a bodyless head
            # ends at the chunk's last CRLF CRLF). After a body: counted from the next chunk.
            trailing = max(0, len(data) - (data.rfind(b"\r\n\r\n") + 4))
        self._queued += self.head_bytes + (used if self._body is not None else len(data) - trailing)
        self.head_bytes = trailing
        self.head_since = self._loop.time() if trailing else None
        if trailing + self._queued > self.edge.head_limit > 0:
            self._too_large()  # already past the bound within this one read

    def _too_large(self) -> None:
        """Refuse the head with 431 through aiohttp's own error path, after anything queued."""
        self._refused = True
        self.edge.busy(self)
        exc = HeadTooLarge()
        self._request_count += 1
        self._messages.append((_ErrInfo(status=431, exc=exc, message=exc.message), EMPTY_PAYLOAD))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        if resp.keep_alive and not (self._messages or self._refused or self._close or self._force_close) and self._body is None:
            self._queued = 0
            if self.head_bytes:  # part of the next head came while this one was answered
                self.head_since = self._loop.time()
            self.edge.waiting(self)
        return result

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The proxy's own short answer; logged as aiohttp logs it (parser rejections at debug
        level on a first request with a bad method), never echoing the request."""
        if request_head_too_large(exc):
            status = 431
        if self._request_count == 1 and isinstance(exc, BadHttpMethod):
            self.logger.debug("Error handling request", exc_info=exc)
        else:
            self.log_exception("Error handling request", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started, cannot answer with an error")
        response = self.edge.error_page(status)
        response.force_close()
        return response


class Server(web.Server):
    """aiohttp's low-level server building `Connection`s, with two hooks of its protocol factory.

    `admit()` is asked for each new connection, before aiohttp builds its handler;
    returning a protocol instead (a refusal) keeps aiohttp out of it entirely.
    `released(handler)` runs when an admitted connection is gone.
    """

    edge: Edge = Edge()

    def admit(self) -> asyncio.BaseProtocol | None:
        return None

    def released(self, handler: web.RequestHandler) -> None:
        pass

    def __call__(self) -> Any:
        refusal = self.admit()
        if refusal is not None:
            return refusal
        return Connection(self, loop=self._loop, edge=self.edge, **self._kwargs)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self.released(handler)
        super().connection_lost(handler, exc)


class OwnResponse(web.Response):
    """A response the proxy writes itself: aiohttp's, minus the `Server` header it adds."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class RelayedResponse(web.StreamResponse):
    """A StreamResponse that takes over a prepared header collection (no copy), may write
    its head with the first body chunk, and lets a subclass undo what aiohttp adds to
    the head (`adjust_headers`, called right after aiohttp's own header preparation)."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str], head_alone: bool) -> None:
        super().__init__(status=status, reason=reason)
        # aiohttp's switch: write the head at prepare(), or with the first body chunk.
        self._send_headers_immediately = head_alone
        self._headers = headers  # taken over, not copied: it was built for this response

    def adjust_headers(self, headers: CIMultiDict[str]) -> None:
        pass

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.adjust_headers(self.headers)


async def write_interim(request: web.BaseRequest, head: bytes) -> None:
    """Write an interim (1xx) answer before the real one, which then starts afresh:
    aiohttp's low-level server leaves `100 Continue` to the handler."""
    await request.writer.write(head)
    request.writer.output_size = 0
