"""Sending one captured request to one upstream.

`Upstream` owns a dedicated connection pool (`client.ConnectionPool`: its own
connection limit and timeouts) and writes each request itself: the headers given,
plus Host when absent and a Content-Length for the body, nothing else. Nothing
aiohttp's ClientSession would do to a request or response happens: no automatic
decompression, no redirect following, no cookie jar, no default headers
(User-Agent, Accept, Accept-Encoding, Content-Type), no environment proxies.
WebSockets use an aiohttp session with the same defaults turned off.

`Upstream.open()` returns the response head for streaming (the primary leg) and
raises `UpstreamError`; `Upstream.observe()` reads the whole exchange into an
`Observation` and never raises (the shadow leg). An Observation holds a response
*or* an error, never both.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import ssl
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import http_exceptions
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from shadowdiff.client import ConnectFailed, ConnectionPool, Response

# Headers aiohttp's WebSocket client would otherwise invent on a request.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# aiohttp's 8190-byte default turns real-world answers (big CSP or cookie headers) into 502s.
MAX_HEADER_BYTES = 64 * 1024
# Requests with no body carry no Content-Length for these (as aiohttp's client did); others get "0".
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Safe to send again when a reused connection turns out closed (RFC 9110 §9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(slots=True)  # built per request: not frozen (1 us cheaper), never mutated
class CapturedRequest:
    """One client request, as both legs will send it (before per-leg headers)."""

    method: str
    target: str  # origin-form path and query, exactly as the client sent them
    path: str  # decoded path, for routing and filters
    route: str
    request_id: str
    headers: CIMultiDictProxy[str]
    body: bytes
    client_host: str  # the Host header the client sent ("" if none)
    started: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)  # built per request: not frozen (1 us cheaper), never mutated
class Body:
    """A response body as kept for comparison: whole if it fit the cap, else a digest."""

    size: int
    data: bytes | None  # None when over the cap
    digest: str | None = None  # sha256 hex, only when data is None


class BodyCapture:
    """Keeps a streamed body up to `limit` bytes, and switches to hashing past it.

    Memory held is bounded by `limit` whatever the body's size.
    """

    __slots__ = ("_limit", "_chunks", "_size", "_hash")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._hash: hashlib._Hash | None = None

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)
            return
        self._chunks.append(chunk)
        if self._size > self._limit:
            self._hash = hashlib.sha256()
            for kept in self._chunks:
                self._hash.update(kept)
            self._chunks = []

    def result(self) -> Body:
        if self._hash is not None:
            return Body(size=self._size, data=None, digest=self._hash.hexdigest())
        return Body(size=self._size, data=b"".join(self._chunks))


@dataclass(slots=True)  # built per request: not frozen (1 us cheaper), never mutated
class Observation:
    """What one upstream answered for one exchange: a response, or an error kind."""

    upstream: str
    elapsed: float  # seconds, from sending until the whole response was read (or it failed)
    status: int | None = None
    reason: str = ""
    headers: CIMultiDictProxy[str] | None = None
    body: Body | None = None
    error: str | None = None  # connect, timeout, reset, protocol, too_large
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class UpstreamError(Exception):
    """An upstream gave no usable response. `kind` is a metric label value."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def classify(exc: BaseException) -> str:
    """Map a client-side exception to an error kind (see metrics.ERROR_KINDS)."""
    if isinstance(exc, ConnectFailed):
        return "connect"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect"  # never connected: the upstream is down or black-holed
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, (aiohttp.ClientResponseError, http_exceptions.HttpProcessingError)) and "Got more than" in str(
        exc.message
    ):
        # A response head past the parser's limits: LineTooLong's text, kept when aiohttp
        # re-raises it as its base class (client protocol) or as ClientResponseError (WebSockets).
        return "too_large"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__ or (exc.args[0] if exc.args else None)
        if isinstance(cause, http_exceptions.TransferEncodingError) or "TransferEncodingError" in str(exc):
            return "protocol"
        return "reset"  # the body stopped short
    if isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionError)):
        return "reset"
    if isinstance(exc, (aiohttp.ClientResponseError, http_exceptions.HttpProcessingError)):
        return "protocol"
    if isinstance(exc, OSError):
        return "reset"
    return "protocol"


class Upstream:
    """A named upstream (primary or shadow) reached through its own connection pool."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float | None,
        total_timeout: float | None,
        max_connections: int,
    ) -> None:
        self.name = name
        self.base = URL(base_url)
        self._base_text = str(self.base).rstrip("/")
        self._base_path = self.base.raw_path.rstrip("/")
        self._host = self.base.host_port_subcomponent or ""
        # Credentials in the URL are the upstream's own: they replace the client's Authorization.
        self._authorization = (
            "Basic " + base64.b64encode(f"{self.base.user}:{self.base.password or ''}".encode("latin-1")).decode()
            if self.base.user is not None
            else None
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._total_timeout = total_timeout
        # For the WebSocket session; plain requests use the pool's own deadlines.
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._pool: ConnectionPool | None = None
        self._ws_session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        base = self.base
        if base.host is None or base.port is None:
            return  # the shadow while mirroring is off: no URL, nothing to reach
        self._pool = ConnectionPool(
            base.host,
            base.port,
            ssl_context=ssl.create_default_context() if base.scheme == "https" else None,
            limit=self._max_connections,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )
        # limit=0: WebSockets are bounded by listen.max_connections instead.
        self._ws_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=self._timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
            raise_for_status=False,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._ws_session is not None:
            await self._ws_session.close()
            self._ws_session = None

    def url_for(self, target: str) -> URL:
        """Base URL + the client's origin-form target, never re-encoded."""
        return URL(self._base_text + target, encoded=True)

    def _head(self, request: CapturedRequest, headers: CIMultiDict[str]) -> bytes:
        """The request line and headers, as they go on the wire (`headers`, this leg's own
        copy, gets Host, Authorization and Content-Length added)."""
        if "Host" not in headers:
            headers["Host"] = self._host
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        if request.body:
            headers["Content-Length"] = str(len(request.body))
        elif request.method not in _NO_BODY_METHODS:
            headers["Content-Length"] = "0"
        return _serialize_headers(f"{request.method} {self._base_path}{request.target} HTTP/1.1", headers)

    async def open(self, request: CapturedRequest, headers: CIMultiDict[str]) -> Response:
        """Send and return the response head; the caller reads the body and releases it."""
        assert self._pool is not None, "Upstream.start() was not awaited"
        try:
            return await self._pool.request(
                self._head(request, headers),
                request.body,
                skip_payload=request.method == "HEAD",
                retry=request.method in _IDEMPOTENT,
            )
        except Exception as exc:  # every failure becomes a kind; the caller decides
            raise UpstreamError(classify(exc), describe(exc)) from exc

    async def websocket(
        self, request: CapturedRequest, headers: CIMultiDict[str], protocols: list[str], *, websocket_limit: int
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket to this upstream (messages up to `websocket_limit`, no compression)."""
        assert self._ws_session is not None, "Upstream.start() was not awaited"
        # Their own session: a WebSocket holds its connection for as long as it lives,
        # and must not take one from the pool that serves plain requests.
        return await self._ws_session.ws_connect(
            self.url_for(request.target),
            headers=headers,
            protocols=protocols,
            autoclose=False,
            autoping=False,
            max_msg_size=websocket_limit,
            compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10.0),
        )

    async def observe(
        self, request: CapturedRequest, headers: CIMultiDict[str], *, body_limit: int
    ) -> Observation:
        """Send, read the whole response (kept up to `body_limit`), never raise."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._total_timeout):
                response = await self.open(request, headers)
                try:
                    capture = BodyCapture(body_limit)
                    reader = response.content
                    while chunk := await reader.readany():
                        capture.feed(chunk)
                except BaseException:
                    response.close()
                    raise
                response.release()
        except UpstreamError as exc:
            return Observation(self.name, time.perf_counter() - started, error=exc.kind, detail=exc.detail)
        except Exception as exc:
            return Observation(self.name, time.perf_counter() - started, error=classify(exc), detail=describe(exc))
        return Observation(
            self.name,
            time.perf_counter() - started,
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            body=capture.result(),
        )


_QUERY = re.compile(r"(https?://[^\s'\"?#]*)[?#][^\s'\"]*")


def describe(exc: BaseException) -> str:
    """A short error text for logs: query strings (tokens live there) removed."""
    text = _QUERY.sub(r"\1?...", str(exc) or type(exc).__name__)
    return text if len(text) <= 200 else text[:197] + "..."
