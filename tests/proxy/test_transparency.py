"""The client gets the primary's answer byte for byte, minus hop-by-hop headers, plus Via."""

from __future__ import annotations

import gzip

import aiohttp
import pytest

from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, connect, metrics, settle, url_of

HOP = ("Connection", "Keep-Alive", "Transfer-Encoding")


def _request(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: app.example\r\n{extra}Connection: close\r\n\r\n".encode()


async def _direct_and_proxied(backend_url: str, proxy_url: str, request: bytes, *, head: bool = False):
    direct = await rawhttp.send(backend_url, request, head=head)
    proxied = await rawhttp.send(proxy_url, request, head=head)
    return direct, proxied


def _assert_same(direct: rawhttp.RawResponse, proxied: rawhttp.RawResponse) -> None:
    assert proxied.status_line == direct.status_line
    assert proxied.without(*HOP, "Via") == direct.without(*HOP)
    assert proxied.values("Via") == ["1.1 shadowdiff"]
    assert proxied.body == direct.body
    assert proxied.complete


@pytest.mark.parametrize(
    "path",
    [
        "/gzip",
        "/redirect",
        "/cookies",
        "/chunked",
        "/status/204",
        "/status/304",
        "/echo/a%20b/%2F/caf%C3%A9?q=a%20b&q=c+d&empty=&%26=%3D",
        "/large?size=3000000",
    ],
)
async def test_responses_match_a_direct_request(primary: Backend, start_proxy: StartProxy, path: str) -> None:
    """Status line, headers (order, case, repeats) and body equal the direct answer, plus Via."""
    proxy = await start_proxy(primary.url)
    direct, proxied = await _direct_and_proxied(primary.url, url_of(proxy), _request(path))
    _assert_same(direct, proxied)


async def test_gzip_body_is_relayed_compressed(primary: Backend, start_proxy: StartProxy) -> None:
    """A gzip answer reaches the client still encoded, with its Content-Encoding and length."""
    proxy = await start_proxy(primary.url)
    proxied = await rawhttp.send(url_of(proxy), _request("/gzip", extra="Accept-Encoding: gzip\r\n"))
    assert proxied.header("Content-Encoding") == "gzip"
    assert proxied.header("Content-Length") == str(len(proxied.body))
    assert gzip.decompress(proxied.body).startswith(b'{"hello": "world"')


async def test_redirect_is_passed_through_not_followed(primary: Backend, start_proxy: StartProxy) -> None:
    """The client sees the primary's 302 and Location; the proxy never asks for the target."""
    proxy = await start_proxy(primary.url)
    proxied = await rawhttp.send(url_of(proxy), _request("/redirect"))
    assert proxied.status == 302
    assert proxied.header("Location") == "/landing"
    assert [seen.raw_path for seen in primary.seen] == ["/redirect"]


async def test_set_cookie_headers_all_arrive(primary: Backend, start_proxy: StartProxy) -> None:
    """Three Set-Cookie headers arrive as three headers, in order."""
    proxy = await start_proxy(primary.url)
    proxied = await rawhttp.send(url_of(proxy), _request("/cookies"))
    assert proxied.values("Set-Cookie") == ["session=abc; Path=/; HttpOnly", "theme=dark; Path=/", "lang=en; Path=/"]


async def test_no_cookie_carried_between_clients(primary: Backend, start_proxy: StartProxy) -> None:
    """Cookies one client was given are never sent upstream on another client's request."""
    # By host name: aiohttp's real cookie jar ignores cookies from IP-address hosts.
    proxy = await start_proxy(primary.url.replace("127.0.0.1", "localhost"))
    await rawhttp.send(url_of(proxy), _request("/cookies"))
    await rawhttp.send(url_of(proxy), _request("/echo"))
    assert primary.seen[-1].raw_path == "/echo"
    assert not primary.seen[-1].has("Cookie")


async def test_large_streamed_body_arrives_whole_with_bounded_memory(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A 100 MB response streams through whole while mirrored, and Python allocations stay far below its size."""
    import tracemalloc

    proxy = await start_proxy(primary.url, shadow.url)
    size = 100 * 1024 * 1024
    received = 0
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline, _ = tracemalloc.get_traced_memory()
    try:
        async with client.get(url_of(proxy) + f"/large?size={size}") as response:
            assert response.headers["Content-Length"] == str(size)
            async for chunk in response.content.iter_chunked(1 << 20):
                received += len(chunk)
        await settle(proxy, timeout=30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not already_tracing:
            tracemalloc.stop()
    assert received == size
    assert peak - baseline < 32 * 1024 * 1024  # both legs kept at most compare.max_body_bytes (1 MiB) each
    m = metrics(proxy)
    assert m.value("shadowdiff_comparisons_total", outcome="match") == 1  # equal by streamed digest


async def test_head_keeps_content_length_without_body(primary: Backend, start_proxy: StartProxy) -> None:
    """HEAD answers carry the primary's Content-Length and no body bytes."""
    proxy = await start_proxy(primary.url)
    direct, proxied = await _direct_and_proxied(primary.url, url_of(proxy), _request("/large?size=5000", "HEAD"), head=True)
    assert proxied.header("Content-Length") == direct.header("Content-Length") == "5000"
    _assert_same(direct, proxied)


async def test_proxy_adds_no_date_server_or_content_type(start_proxy: StartProxy, raw_backend) -> None:
    """A primary answer without Date, Server or Content-Type gets none added, only Via."""
    backend = await raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nx-lower-Case: v\r\n\r\nbody")
    proxy = await start_proxy(backend.url)
    proxied = await rawhttp.send(url_of(proxy), _request("/"))
    assert proxied.without("Connection") == [("Content-Length", "4"), ("x-lower-Case", "v"), ("Via", "1.1 shadowdiff")]
    assert proxied.body == b"body"


async def test_304_keeps_its_content_length(start_proxy: StartProxy, raw_backend) -> None:
    """A 304 that names the representation's Content-Length keeps it (aiohttp would drop it)."""
    backend = await raw_backend(b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n')
    proxy = await start_proxy(backend.url)
    proxied = await rawhttp.send(url_of(proxy), _request("/"))
    assert proxied.status == 304
    assert proxied.header("ETag") == '"v1"'
    assert proxied.header("Content-Length") == "1234"
    assert proxied.complete


async def test_request_reaches_primary_unchanged(primary: Backend, start_proxy: StartProxy) -> None:
    """Method, raw path and query, Host, header case and body reach the primary as sent, with nothing invented."""
    proxy = await start_proxy(primary.url)
    body = gzip.compress(b'{"a": 1}', mtime=0)
    request = (
        b"POST /echo/caf%C3%A9%2Fx?b=2&a=%20 HTTP/1.1\r\nHost: app.example\r\n"
        b"x-Mixed-CASE: yes\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await rawhttp.send(url_of(proxy), request)
    seen = primary.seen[-1]
    assert seen.method == "POST"
    assert seen.raw_path == "/echo/caf%C3%A9%2Fx?b=2&a=%20"
    assert seen.header("Host") == "app.example"
    assert ("x-Mixed-CASE", "yes") in seen.headers
    assert seen.body == body  # still gzip: the proxy did not decompress it
    for invented in ("User-Agent", "Accept", "Accept-Encoding", "Cookie", "X-Shadow-Request"):
        assert not seen.has(invented), invented


CHUNKED_PUT = (
    b"PUT /echo HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


async def test_a_small_chunked_body_is_sent_whole_with_its_length(primary: Backend, start_proxy: StartProxy) -> None:
    """A chunked body that ends within the first 64 KiB is read before the primary is asked, and sent with a Content-Length."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), CHUNKED_PUT)
    assert response.status == 200
    seen = primary.seen[-1]
    assert seen.body == b"hello world"
    assert seen.header("Content-Length") == "11"
    assert not seen.has("Transfer-Encoding")


async def test_a_large_chunked_body_is_streamed_chunked(primary: Backend, start_proxy: StartProxy) -> None:
    """A chunked body past 64 KiB that will not be mirrored is streamed on with chunked framing (its length unknown)."""
    proxy = await start_proxy(primary.url)
    piece = b"p" * 30_000
    body = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for _ in range(5)) + b"0\r\n\r\n"
    head = b"PUT /echo HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    response = await rawhttp.send(url_of(proxy), head + body)
    assert response.status == 200
    seen = primary.seen[-1]
    assert seen.body == piece * 5
    assert seen.header("Transfer-Encoding") == "chunked"
    assert not seen.has("Content-Length")


async def test_chunked_request_body_is_reframed_when_mirrored(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """A chunked body that is mirrored is read whole first: both legs get it with a Content-Length."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["PUT"]})
    response = await rawhttp.send(url_of(proxy), CHUNKED_PUT)
    await settle(proxy)
    assert response.status == 200
    for seen in (primary.seen[-1], shadow.seen[-1]):
        assert seen.body == b"hello world"
        assert seen.header("Content-Length") == "11"
        assert not seen.has("Transfer-Encoding")


async def test_expect_100_continue_is_answered(primary: Backend, start_proxy: StartProxy) -> None:
    """A client sending Expect: 100-continue gets 100 Continue before it sends the body, and the body arrives."""
    import asyncio

    proxy = await start_proxy(primary.url)
    reader, writer = await connect(proxy)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"hello")
        final = rawhttp.parse(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()
    assert final.status == 200
    assert primary.seen[-1].body == b"hello"
    assert not primary.seen[-1].has("Expect")


async def test_head_of_a_silent_stream_is_relayed_at_once(start_proxy: StartProxy) -> None:
    """A primary that sends its head and then waits (an event stream): the client gets the
    head before any body exists, not only with the first chunk."""
    import asyncio

    from aiohttp import web

    from tests.backends import serve_app

    release = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await release.wait()
        await response.write(b"data: 1\n\n")
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    runner, url = await serve_app(app)
    try:
        proxy = await start_proxy(url)
        reader, writer = await connect(proxy)
        try:
            writer.write(b"GET /events HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # while the body is held back
            assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
            release.set()
            rest = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        assert b"data: 1" in rest
    finally:
        release.set()
        await runner.cleanup()
