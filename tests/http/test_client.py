"""The upstream client (http.client + http.upstream) against real loopback servers.

What goes on the wire, connection reuse and its limits, and the corner cases a
pooled HTTP/1.1 client must get right: stale keep-alive connections, interim 1xx
answers, bodies delimited by the connection's end.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.http.client import ConnectionPool
from shadowdiff.http.errors import UpstreamError
from shadowdiff.http.upstream import Limits, Upstream
from shadowdiff.model import CapturedRequest
from tests.backends import ScriptedBackend
from tests.conftest import until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Callable[[int, int], bytes | None]], Awaitable[ScriptedBackend]]]:
    servers: list[ScriptedBackend] = []

    async def start(answer: Callable[[int, int], bytes | None]) -> ScriptedBackend:
        server = await ScriptedBackend(answer).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def upstreams() -> AsyncIterator[Callable[..., Awaitable[Upstream]]]:
    started: list[Upstream] = []

    async def start(url: str, *, max_connections: int = 10, connect_timeout: float = 1.0) -> Upstream:
        upstream = Upstream("primary", url, limits(connect_timeout=connect_timeout, max_connections=max_connections))
        await upstream.start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.close()


def limits(
    *, connect_timeout: float = 1.0, read_timeout: float | None = 5.0, total_timeout: float | None = 5.0,
    max_connections: int = 10, max_headers: int = 256, max_header_line_bytes: int = 65536,
) -> Limits:
    return Limits(connect_timeout, read_timeout, total_timeout, max_connections, max_headers, max_header_line_bytes)


def captured(method: str = "GET", target: str = "/x?q=1", body: bytes = b"", **headers: str) -> CapturedRequest:
    return CapturedRequest(
        method=method,
        target=target,
        path=target.split("?")[0],
        route="/x",
        request_id="r1",
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        body=body,
        client_host="",
    )


async def fetch(upstream: Upstream, request: CapturedRequest, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    response = await upstream.open(request, CIMultiDict(headers or {}))
    body = await response.content.read()
    response.release()
    return response.status, body


def lines(head: bytes) -> list[bytes]:
    return head.rstrip(b"\r\n").split(b"\r\n")


async def test_request_carries_only_the_given_headers_plus_host_and_length(scripted, upstreams) -> None:
    """Nothing is invented: no User-Agent, Accept or Accept-Encoding; Host only when absent;
    Content-Length for a body, "0" for a body-less POST, none for a body-less GET."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url)
    await fetch(upstream, captured("GET"), {"X-A": "1"})
    await fetch(upstream, captured("POST"), {"Host": "client.example"})
    await fetch(upstream, captured("PUT", body=b"abc"), {"Content-Type": "text/plain"})
    get, post, put = (lines(h) for h in server.heads)
    assert get == [b"GET /x?q=1 HTTP/1.1", b"X-A: 1", f"Host: 127.0.0.1:{server.port}".encode()]
    assert post == [b"POST /x?q=1 HTTP/1.1", b"Host: client.example", b"Content-Length: 0"]
    assert put == [b"PUT /x?q=1 HTTP/1.1", b"Content-Type: text/plain", f"Host: 127.0.0.1:{server.port}".encode(), b"Content-Length: 3"]
    assert server.bodies == [b"", b"", b"abc"]


async def test_base_path_and_url_credentials(scripted, upstreams) -> None:
    """A base URL's path prefixes the target; its credentials replace the client's Authorization."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(f"http://svc:s3cret@127.0.0.1:{server.port}/api/")
    await fetch(upstream, captured(target="/v1/items"), {"Authorization": "Bearer client"})
    head = lines(server.heads[0])
    assert head[0] == b"GET /api/v1/items HTTP/1.1"
    assert b"Authorization: Basic " + base64.b64encode(b"svc:s3cret") in head
    assert not any(b"Bearer" in line for line in head)


async def test_header_with_a_newline_is_refused_not_sent(scripted, upstreams) -> None:
    """A header value that would split the request is a protocol error, and nothing reaches the upstream."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url)
    with pytest.raises(UpstreamError) as caught:
        await upstream.open(captured(), CIMultiDict({"X-Evil": "a\r\nX-Injected: 1"}))
    assert caught.value.kind == "protocol"
    assert server.heads == []


async def test_keep_alive_reuses_one_connection(scripted, upstreams) -> None:
    """Sequential requests share one connection; an unread body closes it instead."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url)
    for _ in range(3):
        assert await fetch(upstream, captured()) == (200, b"ok")
    assert server.connections == 1
    response = await upstream.open(captured(), CIMultiDict())
    response.close()  # body not read: this connection cannot be trusted again
    assert await fetch(upstream, captured()) == (200, b"ok")
    assert server.connections == 2


async def test_stale_connection_is_retried_for_idempotent_methods_only(scripted, upstreams) -> None:
    """The upstream dropping a kept-alive connection on the next request: a GET goes again on a
    new connection (RFC 9112 §9.3.1); a POST is not repeated, it fails as a reset."""
    server = await scripted(lambda c, n: OK if n == 1 else None)  # every connection serves one request
    upstream = await upstreams(server.url)
    assert await fetch(upstream, captured()) == (200, b"ok")
    assert await fetch(upstream, captured()) == (200, b"ok")  # stale, then a new connection
    assert server.connections == 2 and len(server.heads) == 3
    with pytest.raises(UpstreamError) as caught:
        await fetch(upstream, captured("POST", body=b"once"))
    assert caught.value.kind == "reset"
    assert server.bodies.count(b"once") == 1


async def test_full_pool_is_a_connect_failure_after_the_connect_timeout(scripted, upstreams) -> None:
    """With every pooled connection busy, a request waits at most connect_timeout, then fails as
    `connect`; a connection handed back serves the next one."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url, max_connections=1, connect_timeout=0.2)
    held = await upstream.open(captured(), CIMultiDict())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await upstream.open(captured(), CIMultiDict())
    assert caught.value.kind == "connect" and "busy" in caught.value.detail
    assert 0.15 < loop.time() - started < 2.0
    waiting = asyncio.ensure_future(fetch(upstream, captured()))
    await asyncio.sleep(0.05)  # a while: long enough for a wrongly granted slot to show
    assert not waiting.done()
    await held.content.read()
    held.release()
    assert await waiting == (200, b"ok")
    assert server.connections == 1


async def test_refused_connection_is_a_connect_failure(upstreams) -> None:
    """Nobody listening: kind `connect`, with the address in the detail."""
    from tests.backends import free_port

    port = free_port()
    upstream = await upstreams(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError) as caught:
        await upstream.open(captured(), CIMultiDict())
    assert caught.value.kind == "connect" and f"127.0.0.1:{port}" in caught.value.detail


async def test_interim_answers_are_skipped(scripted, upstreams) -> None:
    """A 103 Early Hints before the answer is not the answer."""
    server = await scripted(lambda c, n: b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK)
    upstream = await upstreams(server.url)
    assert await fetch(upstream, captured()) == (200, b"ok")
    assert await fetch(upstream, captured()) == (200, b"ok")  # the connection is still in step
    assert server.connections == 1


async def test_body_without_length_is_read_until_close(scripted, upstreams) -> None:
    """No Content-Length, not chunked: the body is everything until the upstream closes, and
    that connection is not reused."""
    server = await scripted(lambda c, n: b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
    server.close_after_answer = True
    upstream = await upstreams(server.url)
    assert await fetch(upstream, captured()) == (200, b"all of it")
    assert await fetch(upstream, captured()) == (200, b"all of it")
    assert server.connections == 2


async def test_head_answer_has_no_body_to_wait_for(scripted, upstreams) -> None:
    """A HEAD answer's Content-Length describes a body that never comes: the connection stays usable."""
    server = await scripted(lambda c, n: b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" if n == 1 else OK)
    upstream = await upstreams(server.url)
    status, body = await fetch(upstream, captured("HEAD"))
    assert (status, body) == (200, b"")
    assert await fetch(upstream, captured()) == (200, b"ok")
    assert server.connections == 1


async def test_idle_connections_expire(scripted) -> None:
    """A connection idle past idle_timeout is not reused, and is closed even if no request comes."""
    server = await scripted(lambda c, n: OK)
    pool = ConnectionPool(
        "127.0.0.1", server.port, ssl_context=None, limit=10, connect_timeout=1.0, read_timeout=5.0,
        max_line_size=8190, max_field_size=8190, max_headers=128, idle_timeout=0.05,
    )
    head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    for pause in (0.0, 0.2):
        await asyncio.sleep(pause)
        response = await pool.request(head, b"", skip_payload=False, retry=True)
        assert await response.content.read() == b"ok"
        response.release()
    assert server.connections == 2
    assert pool.open_connections == 1
    await until(lambda: pool.open_connections == 0)  # nothing asks for it: the pool closes it on its own
    pool.close()
    assert pool.open_connections == 0


async def test_interim_answer_then_silence_times_out(scripted) -> None:
    """A `100 Continue` and then nothing: the read timeout still ends the wait."""
    server = await scripted(lambda c, n: b"HTTP/1.1 100 Continue\r\n\r\n")
    upstream = Upstream("primary", server.url, limits(read_timeout=0.3, total_timeout=None, max_connections=2))
    await upstream.start()
    try:
        with pytest.raises(UpstreamError) as caught:
            await asyncio.wait_for(upstream.open(captured(), CIMultiDict()), 5)
        assert caught.value.kind == "timeout"
    finally:
        await upstream.close()


async def test_cancelled_waiter_stays_cancelled_when_a_slot_frees_at_once(scripted, upstreams) -> None:
    """A request waiting for a full pool, cancelled in the same step a connection comes
    back: it ends cancelled (not some other error), and the pool stays usable."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url, max_connections=1)
    held = await upstream.open(captured(), CIMultiDict())
    await held.content.read()
    waiting = asyncio.ensure_future(upstream.open(captured(), CIMultiDict()))
    await asyncio.sleep(0.05)  # the request is now waiting for the full pool's slot
    waiting.cancel()
    held.release()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await fetch(upstream, captured()) == (200, b"ok")


async def test_closing_the_pool_fails_its_waiters(scripted, upstreams) -> None:
    """Requests waiting for a slot when the pool closes fail as `connect`, opening nothing."""
    server = await scripted(lambda c, n: OK)
    upstream = await upstreams(server.url, max_connections=1)
    held = await upstream.open(captured(), CIMultiDict())
    waiting = asyncio.ensure_future(upstream.open(captured(), CIMultiDict()))
    await asyncio.sleep(0.05)  # the request is now waiting for the full pool's slot
    await upstream.close()
    with pytest.raises(UpstreamError) as caught:
        await waiting
    assert caught.value.kind == "connect" and "closed" in caught.value.detail
    held.close()
    assert server.connections == 1


async def test_a_connection_the_upstream_spoke_on_while_idle_is_not_reused(upstreams) -> None:
    """Bytes an upstream sends between answers (here half a status line) are never read as
    the next answer: that connection is dropped and the request goes on a fresh one."""
    stray = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(OK)
                await writer.drain()
                await asyncio.sleep(0.05)  # the client has put the connection back in the pool
                writer.write(b"HTTP/1.1 2")  # unsolicited, and incomplete
                await writer.drain()
                stray.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        upstream = await upstreams(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        assert await fetch(upstream, captured()) == (200, b"ok")
        await asyncio.wait_for(stray.wait(), 5)
        await asyncio.sleep(0.05)  # the stray bytes reach the idle connection's protocol
        assert await fetch(upstream, captured()) == (200, b"ok")
    finally:
        server.close()
