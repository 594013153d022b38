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
    """A primary that reads a request body as it comes and says how much it has so far."""

    url: str = ""
    received: bytearray = field(default_factory=bytearray)
    heads: list[bytes] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)
    answer_at_once: bool = False


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
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            while len(state.received) < length:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                state.received += chunk
                state.grew.set()
            writer.write(OK)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()

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


async def test_a_streamed_chunked_body_past_the_request_limit_is_413(receiver: Receiver, start_proxy: StartProxy) -> None:
    """A chunked body that passes listen.max_request_body_bytes while streaming gets 413; the primary's request is cut off."""
    proxy = await start_proxy(receiver.url, listen={"max_request_body_bytes": 1000})
    request = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"200\r\n" + b"z" * 512 + b"\r\n") * 4
    response = await rawhttp.send(url_of(proxy), request + b"0\r\n\r\n")
    assert response.status == 413


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
