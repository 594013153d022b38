"""A lean HTTP/1.1 client for the upstream legs: a bounded keep-alive pool per upstream.

aiohttp's `ClientSession` costs 65-74 us of CPU per request on the benchmark
machine against 23-30 us for this client, head building included
(`benchmarks/client_cost.py`); most of the difference is machinery a proxy turns
off anyway: tracing, cookies, redirects, proxies, middlewares, URL and header
rebuilding. This keeps aiohttp's wire pieces — its client protocol
(`ResponseHandler`, with the C llhttp response parser and read timeouts) and its
header serializer (which refuses control characters) — and drops the rest.

What it does, the way aiohttp's client did it for the proxy:
- one request per connection at a time; a connection goes back to the pool only
  when its response was read to the end and nothing says close;
- at most `limit` connections; waiting for a free one and connecting share one
  deadline (`connect_timeout`), and missing it is a connect failure, never a queue
  without end;
- idle connections older than `idle_timeout` are closed, never reused;
- an idempotent request that fails on a reused connection before a complete answer
  head (the upstream closed it while idle) is sent once more on another connection
  (RFC 9112 §9.3.1), as aiohttp does; never once a 1xx has come;
- interim 1xx answers (other than 101) are skipped;
- responses without a length are read until the connection closes;
- a request body is either bytes (sent with the head) or a `BodySource` streamed
  chunk by chunk as the client sends it (chunked when its length is unknown), with
  the upstream's flow control respected; an upstream that answers before the whole
  body is sent gets no more of it (seen at the client's next chunk), and that
  connection is not reused.

Timeouts are attributes (`connect_timeout`, `read_timeout`): a new value applies
from the next request on, so they can change while serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import time
from collections import deque

from typing import Protocol

from aiohttp.client_exceptions import ClientOSError, ServerDisconnectedError
from multidict import CIMultiDictProxy

from shadowdiff.http._aiohttp import ClientProtocol, RawResponseMessage, StreamReader, drain, has_answer

_LAST_CHUNK = b"0\r\n\r\n"
# Past this many bytes queued for the upstream, a streamed body waits for it to drain
# (asyncio's and uvloop's transports pause a protocol at 64 KiB).
_HIGH_WATER = 64 * 1024


class BodyFailed(Exception):
    """The client's request body failed while it was being sent upstream: too slow, too
    large or malformed. `status` and `text` are the client's answer (408, 413, 400);
    `status` is None when the client left, and nobody is there to answer."""

    def __init__(self, status: int | None, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class BodySource(Protocol):
    """A request body read from the client while it is sent upstream.

    `read()` returns the next chunk, b"" at the end, and raises BodyFailed when the
    client's body fails: the pool closes the upstream connection and lets it through. `chunked`: the length is unknown, so the
    body goes with Transfer-Encoding: chunked (the head says so).
    """

    chunked: bool

    async def read(self) -> bytes: ...


class ConnectFailed(Exception):
    """No connection could be had in time (refused, unreachable, timed out, pool full)."""


class Response:
    """An upstream's answer head; the body streams from `content`.

    Exactly one of `release()` (the body was read to the end: the connection may
    be reused) or `close()` (anything else) must be called, once.
    """

    __slots__ = ("status", "reason", "headers", "raw_headers", "content", "_pool", "_protocol")

    def __init__(self, pool: ConnectionPool, protocol: ClientProtocol, message: RawResponseMessage, payload: StreamReader) -> None:
        self.status = message.code
        self.reason = message.reason
        self.headers: CIMultiDictProxy[str] = message.headers
        self.raw_headers = message.raw_headers
        self.content = payload
        self._pool = pool
        self._protocol = protocol

    def release(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            self._pool.put_back(protocol, reusable=self.content.is_eof())

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            self._pool.put_back(protocol, reusable=False)


class ConnectionPool:
    """Keep-alive connections to one host:port (TLS when `ssl_context` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl_module.SSLContext | None,
        limit: int,
        connect_timeout: float,
        read_timeout: float | None,
        max_line_size: int,
        max_field_size: int,
        max_headers: int,
        idle_timeout: float = 15.0,
    ) -> None:
        self.host, self.port = host, port
        self._ssl = ssl_context
        self._limit = limit  # 0: no limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._max_line_size = max_line_size
        self._max_field_size = max_field_size
        self._max_headers = max_headers
        self._idle_timeout = idle_timeout
        self._idle: deque[tuple[ClientProtocol, float]] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._open = 0  # connections open, being opened, or in use
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None

    @property
    def open_connections(self) -> int:
        return self._open

    async def request(self, head: bytes, body: bytes | BodySource, *, skip_payload: bool, retry: bool) -> Response:
        """Send one request and return its answer head. Raises ConnectFailed, aiohttp's
        errors, or whatever a BodySource raised. A streamed body is never sent twice."""
        streamed = not isinstance(body, bytes)
        retry = retry and not streamed
        while True:
            # A streamed body cannot be sent twice, so it never risks a connection the
            # upstream may have closed while it sat idle: it gets a new one.
            protocol, reused = await self._acquire(fresh=streamed)
            if protocol.skip_payload is not skip_payload:
                # A response parser per connection, not per request: after a whole response
                # llhttp is ready for the next one (a connection with anything left over is
                # never reused: see put_back).
                protocol.set_response_params(
                    skip_payload=skip_payload,
                    read_until_eof=True,
                    auto_decompress=False,
                    read_timeout=self.read_timeout,
                    max_line_size=self._max_line_size,
                    max_field_size=self._max_field_size,
                    max_headers=self._max_headers,
                )
                protocol.skip_payload, protocol.applied_timeout = skip_payload, self.read_timeout
            elif protocol.applied_timeout is not self.read_timeout:  # a live change since
                protocol.read_timeout = protocol.applied_timeout = self.read_timeout
            try:
                transport = protocol.transport
                if transport is None:  # closed between the pool's check and now
                    raise ServerDisconnectedError()
                if streamed:
                    transport.write(head)
                    await self._upload(protocol, transport, body)  # type: ignore[arg-type]
                elif body:
                    transport.writelines((head, body))
                else:
                    transport.write(head)
                protocol.start_timeout()
                while True:
                    message, payload = await protocol.read()
                    if message.code >= 200 or message.code < 100 or message.code == 101:
                        return Response(self, protocol, message, payload)
                    retry = False  # the upstream has begun to answer this request
                    if not len(protocol):
                        # aiohttp stops the read timer at a bodiless 1xx: restart it, or a
                        # `100 Continue` followed by silence would hang the request for good.
                        protocol.start_timeout()
            except (ServerDisconnectedError, ClientOSError):
                self.put_back(protocol, reusable=False)
                if not (retry and reused):
                    raise
                retry = False  # once, on another connection
            except BaseException:
                self.put_back(protocol, reusable=False)
                raise

    async def _upload(self, protocol: ClientProtocol, transport: asyncio.Transport, source: BodySource) -> None:
        """Send a streamed body as it comes, waiting while the upstream's buffers are
        full (at most read_timeout: an upstream that stops reading is a timeout)."""
        while chunk := await source.read():
            if has_answer(protocol) or protocol.transport is None:
                # It answered early (or hung up): it wants no more of this body. What it
                # said is read next; this connection is not reused.
                protocol.force_close()
                return
            try:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if source.chunked else chunk)
                if transport.get_write_buffer_size() > _HIGH_WATER:
                    async with asyncio.timeout(self.read_timeout):
                        await drain(protocol)
            except ConnectionError:
                if not has_answer(protocol):
                    raise
                protocol.force_close()  # it answered, then hung up on the rest: its answer stands
                return
        if source.chunked:
            transport.write(_LAST_CHUNK)

    def put_back(self, protocol: ClientProtocol, *, reusable: bool) -> None:
        if reusable and not self._closed and not protocol.should_close and protocol.is_connected():
            protocol.idle = True
            self._idle.append((protocol, time.monotonic()))
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(self._idle_timeout, self._sweep)
        else:
            self._discard(protocol)
        self._wake_one()

    def _discard(self, protocol: ClientProtocol) -> None:
        """Close a connection of this pool; its slot is free again."""
        protocol.close()
        self._open -= 1

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise ConnectFailed(f"connection pool to {self.host}:{self.port} is closed")

    async def _acquire(self, *, fresh: bool = False) -> tuple[ClientProtocol, bool]:
        """An idle connection (reused=True), or a new one within the connect deadline
        (always a new one when `fresh`)."""
        self._refuse_if_closed()
        protocol = self._reusable(fresh)
        if protocol is not None:
            return protocol, True
        try:
            async with asyncio.timeout(self.connect_timeout):
                while self._limit and self._open >= self._limit:
                    await self._wait_for_slot()
                    self._refuse_if_closed()
                    protocol = self._reusable(fresh)
                    if protocol is not None:
                        return protocol, True
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
        except TimeoutError:
            busy = " (all pooled connections busy)" if self._limit and self._open >= self._limit else ""
            raise ConnectFailed(f"connection to {self.host}:{self.port} timed out{busy}") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc

    def _reusable(self, fresh: bool) -> ClientProtocol | None:
        """An idle connection to reuse; with `fresh` none, and an idle one gives up its slot
        only when the pool is full."""
        if not fresh:
            return self._take_idle()
        if self._limit and self._open >= self._limit:
            protocol = self._take_idle()
            if protocol is not None:
                self._discard(protocol)
        return None

    def _take_idle(self) -> ClientProtocol | None:
        now = time.monotonic()
        while self._idle:
            protocol, since = self._idle.pop()  # the most recently used: its peer is least likely to have closed it
            usable = protocol.is_connected() and not protocol.should_close and not protocol.spoke_while_idle
            if now - since <= self._idle_timeout and usable:
                protocol.idle = False
                return protocol
            self._discard(protocol)
        return None

    def _sweep(self) -> None:
        """Close connections idle past idle_timeout (the oldest are on the left), so that a
        burst's connections do not stay open after it; one timer per pool, not per request."""
        self._sweeper = None
        deadline = time.monotonic() - self._idle_timeout
        while self._idle and self._idle[0][1] <= deadline:
            self._discard(self._idle.popleft()[0])
        if self._idle and not self._closed:
            wait = self._idle[0][1] - deadline
            self._sweeper = asyncio.get_running_loop().call_later(wait, self._sweep)
        self._wake_one()

    async def _wait_for_slot(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken and cancelled at once: pass the turn on
            else:
                with contextlib.suppress(ValueError):  # _wake_one() may have dropped it already
                    self._waiters.remove(waiter)
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self) -> ClientProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: ClientProtocol(loop),
            self.host,
            self.port,
            ssl=self._ssl,
            server_hostname=self.host if self._ssl is not None else None,
        )
        return protocol

    def close(self) -> None:
        """Close idle connections; ones in use close when their response is done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._discard(self._idle.pop()[0])
        for waiter in self._waiters:  # each wakes, sees the pool closed, and fails
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
