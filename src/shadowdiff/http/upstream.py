"""Sending one captured request to one upstream.

`Upstream` owns a dedicated connection pool (`client.ConnectionPool`: its own
connection limit and timeouts) and writes each request itself: the headers given,
plus Host when absent and the body's framing (Content-Length, or chunked for a
streamed body of unknown length), nothing else. Nothing aiohttp's ClientSession
would do to a request or response happens: no automatic decompression, no redirect
following, no cookie jar, no default headers (User-Agent, Accept, Accept-Encoding,
Content-Type), no environment proxies. WebSockets use an aiohttp session with the
same defaults turned off.

`Upstream.open()` returns the response head for streaming (the primary leg) and
raises `UpstreamError`; `Upstream.observe()` reads the whole exchange into an
`Observation` and never raises (the background lanes).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from shadowdiff.config import Config
from shadowdiff.http._aiohttp import serialize_head
from shadowdiff.http.client import BodyFailed, BodySource, ConnectionPool, Response
from shadowdiff.http.errors import UpstreamError, classify, describe
from shadowdiff.model import BodyCapture, BufferAccount, CapturedRequest, Observation

# Headers aiohttp's WebSocket client would otherwise invent on a request.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Requests with no body carry no Content-Length for these (as aiohttp's client did); others get "0".
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Safe to send again when a reused connection turns out closed (RFC 9110 §9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Limits:
    """How one upstream is reached: deadlines (seconds; None for none), its pool size,
    and the response head it accepts."""

    connect_timeout: float
    read_timeout: float | None  # between reads, once the request is sent
    total_timeout: float | None  # a whole observe(), head and body
    max_connections: int
    max_headers: int
    max_header_line_bytes: int

    @classmethod
    def primary(cls, config: Config) -> Limits:
        """The primary's: a deadline between reads (a long download is fine while bytes keep coming)."""
        primary = config.primary
        return cls(
            connect_timeout=primary.connect_timeout,
            read_timeout=primary.timeout,
            total_timeout=None,
            max_connections=primary.max_connections,
            max_headers=primary.max_headers,
            max_header_line_bytes=primary.max_header_line_bytes,
        )

    @classmethod
    def shadow(cls, config: Config) -> Limits:
        """A background lane's (shadow, secondary, re-ask): shadow work is bounded end to end."""
        shadow = config.shadow
        return cls(
            connect_timeout=shadow.connect_timeout,
            read_timeout=None,
            total_timeout=shadow.timeout,
            max_connections=config.mirror.max_in_flight,
            max_headers=shadow.max_headers,
            max_header_line_bytes=shadow.max_header_line_bytes,
        )


class StreamedBody:
    """A request body handed to `Upstream.open()` as a stream: its source, and the
    length the client declared (None: unknown, sent chunked)."""

    __slots__ = ("source", "length")

    def __init__(self, source: BodySource, length: int | None) -> None:
        self.source = source
        self.length = length


class Upstream:
    """A named upstream reached through its own connection pool."""

    def __init__(self, name: str, base_url: str, limits: Limits) -> None:
        self.name = name
        self.base = URL(base_url)
        self._base_text = str(self.base).rstrip("/")
        self._base_path = self.base.raw_path.rstrip("/")
        self._host = self.authority = self.base.host_port_subcomponent or ""  # the Host it is asked with by default
        # Credentials in the URL are the upstream's own: they replace the client's Authorization.
        self._authorization = (
            "Basic " + base64.b64encode(f"{self.base.user}:{self.base.password or ''}".encode("latin-1")).decode()
            if self.base.user is not None
            else None
        )
        self.limits = limits
        self._pool: ConnectionPool | None = None
        self._ws_session: aiohttp.ClientSession | None = None

    def set_timeouts(self, *, connect_timeout: float, read_timeout: float | None, total_timeout: float | None) -> None:
        """New deadlines, from the next request on (a live config change)."""
        limits = self.limits
        self.limits = Limits(
            connect_timeout, read_timeout, total_timeout, limits.max_connections, limits.max_headers,
            limits.max_header_line_bytes,
        )  # fmt: skip
        if self._pool is not None:
            self._pool.connect_timeout, self._pool.read_timeout = connect_timeout, read_timeout

    async def start(self) -> None:
        base, limits = self.base, self.limits
        if base.host is None or base.port is None:
            return  # a lane while mirroring is off: no URL, nothing to reach
        self._pool = ConnectionPool(
            base.host,
            base.port,
            ssl_context=ssl.create_default_context() if base.scheme == "https" else None,
            limit=limits.max_connections,
            connect_timeout=limits.connect_timeout,
            read_timeout=limits.read_timeout,
            max_line_size=limits.max_header_line_bytes,
            max_field_size=limits.max_header_line_bytes,
            max_headers=limits.max_headers,
        )
        # limit=0: WebSockets are bounded by listen.max_connections instead.
        self._ws_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(
                total=limits.total_timeout, connect=limits.connect_timeout, sock_connect=limits.connect_timeout,
                sock_read=limits.read_timeout,
            ),  # fmt: skip
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
            raise_for_status=False,
            max_line_size=limits.max_header_line_bytes,
            max_field_size=limits.max_header_line_bytes,
            max_headers=limits.max_headers,
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

    def _head(self, request: CapturedRequest, headers: CIMultiDict[str], streamed: StreamedBody | None) -> bytes:
        """The request line and headers, as they go on the wire (`headers`, this leg's own
        copy, gets Host, Authorization and the body's framing added)."""
        if "Host" not in headers:
            headers["Host"] = self._host
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        if streamed is not None:
            if streamed.length is None:
                headers["Transfer-Encoding"] = "chunked"
            else:
                headers["Content-Length"] = str(streamed.length)
        elif request.body:
            headers["Content-Length"] = str(len(request.body))
        elif request.method not in _NO_BODY_METHODS:
            headers["Content-Length"] = "0"
        return serialize_head(f"{request.method} {self._base_path}{request.target} HTTP/1.1", headers)

    async def open(
        self, request: CapturedRequest, headers: CIMultiDict[str], *, streamed: StreamedBody | None = None
    ) -> Response:
        """Send (the request's buffered body, or `streamed`) and return the response head;
        the caller reads the body and releases it. Raises UpstreamError, or what a streamed
        body's source raised."""
        assert self._pool is not None, "Upstream.start() was not awaited"
        try:
            return await self._pool.request(
                self._head(request, headers, streamed),
                request.body if streamed is None else streamed.source,
                skip_payload=request.method == "HEAD",
                retry=request.method in _IDEMPOTENT,
            )
        except BodyFailed:
            raise  # the client's body, not the upstream, failed: the caller answers the client
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
        self, request: CapturedRequest, headers: CIMultiDict[str], *, lane: str, body_limit: int, budget: BufferAccount | None = None
    ) -> Observation:
        """Send, read the whole response (kept up to `body_limit`, and while `budget` has room), never raise."""
        started = time.perf_counter()
        head_elapsed = None
        try:
            async with asyncio.timeout(self.limits.total_timeout):
                response = await self.open(request, headers)
                head_elapsed = time.perf_counter() - started
                try:
                    capture = BodyCapture(body_limit, budget)
                    reader = response.content
                    while chunk := await reader.readany():
                        capture.feed(chunk)
                except BaseException:
                    response.close()
                    raise
                response.release()
        except UpstreamError as exc:
            return Observation(lane, time.perf_counter() - started, head_elapsed, error=exc.kind, detail=exc.detail)
        except Exception as exc:
            return Observation(lane, time.perf_counter() - started, head_elapsed, error=classify(exc), detail=describe(exc))
        return Observation(
            lane,
            time.perf_counter() - started,
            head_elapsed,
            status=response.status,
            reason=response.reason or "",
            headers=response.headers,
            body=capture.result(),
        )
