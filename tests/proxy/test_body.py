"""Request bodies: streamed to the primary unless mirrored, a global bound on what is buffered, limits kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, connect, metrics, settle, until, url_of

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Receiver:
    """A primary that reads a request body as it comes (by Content-Length, or chunked to its
    last chunk) and says how much it has so far and whether it got it all."""

    url: str = ""
    received: bytearray = field(default_factory=bytearray)
    heads: list[bytes] = field(default_factory=list)
    complete: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    answer_at_once: bool = False
    interim: bytes = b""  # sent right after the head arrives, before the body is read


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            state.heads.append(head)
            if state.answer_at_once:  # answers before reading any body; then a lingering close, as servers do
                writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope")
                writer.write_eof()
                with contextlib.suppress(asyncio.TimeoutError):
                    async with asyncio.timeout(2):
                        while await reader.read(65536):
                            pass
                return
            if state.interim:
                writer.write(state.interim)
                await writer.drain()
            lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
            while not state.complete:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                state.received += chunk
                state.complete = len(state.received) >= lengths[0] if lengths else state.received.endswith(b"0\r\n\r\n")
            writer.write(OK)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            state.closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield state
    server.close()


async def test_a_body_that_is_not_mirrored_streams_to_the_primary(receiver: Receiver, start_proxy: StartProxy) -> None:
    """The primary gets the first half of a POST while the client still holds back the second half."""
    proxy = await start_proxy(receiver.url)
    half = b"a" * 300_000
    reader, writer = await connect(proxy)
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 600000\r\nConnection: close\r\n\r\n" + half)
        await writer.drain()
        await until(lambda: len(receiver.received) >= 250_000)  # the proxy relays as it reads
        writer.write(b"b" * 300_000)
        await writer.drain()
        response = rawhttp.parse(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()
    assert response.status == 200
    assert bytes(receiver.received) == half + b"b" * 300_000
    assert b"Content-Length: 600000" in receiver.heads[0]


async def test_past_the_buffer_bound_a_mirrored_body_is_streamed_and_not_mirrored(
    primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """With mirror.max_buffered_bytes smaller than a body, the client is served in full and the copy skipped as buffer_full."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["POST"], "max_buffered_bytes": 10})
    response = await rawhttp.send(
        url_of(proxy), b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"x" * 100
    )
    await settle(proxy)
    assert response.status == 200
    assert primary.seen[-1].body == b"x" * 100
    assert shadow.seen == []
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="buffer_full") == 1
    assert proxy.budget.held == 0


async def test_buffered_bodies_are_given_back_once_mirrored(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """A mirrored body is held while its copy is under way and given back after: the next one fits again."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["POST"], "max_buffered_bytes": 150})
    for _ in range(3):
        response = await rawhttp.send(
            url_of(proxy), b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + b"y" * 100
        )
        assert response.status == 200
        await settle(proxy)
    assert [s.body for s in shadow.seen] == [b"y" * 100] * 3
    assert proxy.budget.held == 0


async def test_a_chunked_body_past_the_mirror_cap_is_streamed_whole(
    primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """A chunked body that turns out larger than mirror.max_body_bytes is not mirrored; the primary still gets every byte."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["PUT"], "max_body_bytes": 8})
    request = (
        b"PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n6\r\n again\r\n0\r\n\r\n"
    )
    response = await rawhttp.send(url_of(proxy), request)
    await settle(proxy)
    assert response.status == 200
    assert primary.seen[-1].body == b"hello world again"
    assert shadow.seen == []
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="body_too_large") == 1


def _chunked(pieces: int, size: int) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (size, b"z" * size) for _ in range(pieces)) + b"0\r\n\r\n"


async def test_a_small_body_past_the_request_limit_never_reaches_the_primary(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A chunked body that passes listen.max_request_body_bytes before it is streamed gets 413 without asking the primary."""
    proxy = await start_proxy(receiver.url, listen={"max_request_body_bytes": 1000})
    head = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    response = await rawhttp.send(url_of(proxy), head + _chunked(4, 512))
    assert response.status == 413
    assert receiver.heads == []


async def test_a_streamed_body_past_the_request_limit_is_cut_off(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A chunked body that passes listen.max_request_body_bytes while streaming gets 413, and the primary never
    gets its last chunk: its request is cut off, not completed."""
    proxy = await start_proxy(receiver.url, listen={"max_request_body_bytes": 100_000})
    body = _chunked(10, 20_000)
    reader, writer = await connect(proxy)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body[:80_000])
        await writer.drain()
        await until(lambda: receiver.heads)  # streaming has begun
        writer.write(body[80_000:])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")
    await asyncio.wait_for(receiver.closed.wait(), 5)
    assert len(receiver.heads) == 1 and receiver.received and not receiver.complete


async def test_partly_buffered_chunked_body_gives_its_room_back(
    primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """A mirrored chunked body that outgrows the buffer budget part way is streamed whole to the primary, not mirrored,
    and the part it had held is given back."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["PUT"], "max_buffered_bytes": 12})
    head = b"PUT /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    reader, writer = await connect(proxy)
    try:
        for piece in (b"5\r\naaaaa\r\n", b"5\r\nbbbbb\r\n", b"5\r\nccccc\r\n", b"0\r\n\r\n"):
            writer.write((head if piece.startswith(b"5\r\na") else b"") + piece)
            await writer.drain()
            await asyncio.sleep(0.02)  # one chunk at a time, as the proxy reads them
        response = rawhttp.parse(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()
    await settle(proxy)
    assert response.status == 200
    assert primary.seen[-1].body == b"aaaaabbbbbccccc"
    assert shadow.seen == []
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="buffer_full") == 1
    assert proxy.budget.held == 0


async def test_a_client_leaving_mid_upload_is_not_a_primary_error(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A client that hangs up half way through a streamed upload: the primary's request is cut off, and nothing is
    counted against the primary (no upstream error, no 5xx answered)."""
    proxy = await start_proxy(receiver.url)
    reader, writer = await connect(proxy)
    writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n" + b"u" * 200_000)
    await writer.drain()
    await until(lambda: len(receiver.received) >= 100_000)
    writer.transport.abort()
    await asyncio.wait_for(receiver.closed.wait(), 5)
    await until(lambda: metrics(proxy).value("shadowdiff_upstream_errors_total", upstream="primary") == 0, timeout=0.5)
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary") == 0
    assert m.value("shadowdiff_requests_total") == 0
    assert not receiver.complete


async def test_a_streamed_body_never_takes_an_idle_connection(start_proxy: StartProxy, client) -> None:
    """A streamed upload goes on a new connection even when a kept-alive one is idle (it could not be sent again if
    that one turned out closed)."""
    from tests.backends import ScriptedBackend

    server = await ScriptedBackend(lambda connection, request: OK).start()
    try:
        proxy = await start_proxy(server.url)
        async with client.get(url_of(proxy) + "/first") as response:
            assert response.status == 200
        async with client.put(url_of(proxy) + "/upload", data=b"v" * 200_000) as response:
            assert response.status == 200
        assert server.connections == 2
        assert server.bodies[-1] == b"v" * 200_000
    finally:
        await server.stop()


async def test_an_interim_answer_during_an_upload_is_not_the_answer(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A primary sending 103 Early Hints before it has read the body still gets the whole body, and the client its 200."""
    receiver.interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    proxy = await start_proxy(receiver.url)
    response = await rawhttp.send(
        url_of(proxy), b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\nConnection: close\r\n\r\n" + b"w" * 300_000
    )
    assert response.status == 200
    assert receiver.complete and len(receiver.received) == 300_000


async def test_a_primary_answering_before_the_body_ends_is_heard(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A primary that refuses an upload at once: the proxy stops sending it the body (at the client's next chunk),
    the client gets the primary's answer, and the connection is closed after it."""
    receiver.answer_at_once = True
    proxy = await start_proxy(receiver.url)
    reader, writer = await connect(proxy)

    async def upload() -> None:
        try:
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4000000\r\n\r\n")
            for _ in range(100):
                writer.write(b"q" * 40_000)
                await writer.drain()
        except ConnectionError:
            pass  # the proxy closed the connection after the answer: expected

    sending = asyncio.ensure_future(upload())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        await asyncio.wait_for(sending, 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in head
