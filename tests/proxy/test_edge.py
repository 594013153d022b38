"""The traffic port's edge: a bound on each request head (431), a head deadline (408), slow and
idle connections giving way at the cap, and the proxy's own short error pages."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from shadowdiff.service import ShadowDiff
from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, connect, memory_bytes, metrics, serving, url_of

OK = b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


def _head(size: int, *, line: int = 1000, end: bool = True) -> bytes:
    """A GET head of about `size` bytes in header lines of `line` bytes each."""
    start = b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
    lines = []
    total = len(start) + 2
    i = 0
    while total < size:
        value = b"v" * max(1, min(line, size - total) - 12)
        lines.append(b"X-F%04d: " % i + value + b"\r\n")
        total += len(lines[-1])
        i += 1
    return start + b"".join(lines) + (b"\r\n" if end else b"")


async def _read_all(reader: asyncio.StreamReader, seconds: float = 5) -> bytes:
    return await asyncio.wait_for(reader.read(), seconds)


# -- the head's byte bound -------------------------------------------------------------


async def _exchange(proxy: ShadowDiff, *writes: bytes) -> bytes:
    """Send `writes` on one connection (a pause between them, for the proxy to take each), read all it answers."""
    reader, writer = await connect(proxy)
    try:
        for index, data in enumerate(writes):
            if index:
                await asyncio.sleep(0.2)  # the head before is taken: its body is awaited
            writer.write(data)
            await writer.drain()
        return await _read_all(reader)
    finally:
        writer.close()


def _assert_first_answered_then_431(data: bytes, primary: Backend) -> None:
    first_answer, _, rest = data.partition(b"\r\n\r\n")
    assert first_answer.startswith(b"HTTP/1.1 200 ")
    assert b" 431 Request Header Fields Too Large" in rest
    assert [s.raw_path for s in primary.seen] == ["/first"]


async def test_head_within_the_byte_bound_is_served(primary: Backend, start_proxy: StartProxy) -> None:
    """A 60 KiB head of 1 KB lines is proxied with the defaults (64 KiB, 128 lines)."""
    proxy = await start_proxy(primary.url)
    request = _head(60 * 1024)
    assert 60 * 1024 <= len(request) < 64 * 1024
    assert (await rawhttp.send(url_of(proxy), request)).status == 200
    assert len(primary.seen) == 1


async def test_head_past_the_byte_bound_gets_431(primary: Backend, start_proxy: StartProxy) -> None:
    """A 70 KB head of 70 lines (under the line and count limits) gets 431, reaches no backend, and is counted."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), _head(70 * 1024))
    assert response.status == 431
    assert response.status_line.endswith("431 Request Header Fields Too Large")
    assert primary.seen == []
    assert metrics(proxy).value("shadowdiff_malformed_requests_total") == 1


async def test_a_head_is_refused_before_it_is_read_past_the_bound(primary: Backend, start_proxy: StartProxy) -> None:
    """A head trickled in 1 KiB pieces that never ends gets 431 and a close once it passes listen.max_head_bytes."""
    proxy = await start_proxy(primary.url, listen={"max_head_bytes": 4096})
    reader, writer = await connect(proxy)
    sent = 0
    try:
        writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n")
        answer = b""
        for i in range(64):  # 64 KiB at most; the answer must come after about 4
            writer.write(b"X-P%03d: " % i + b"p" * 1014 + b"\r\n")
            await writer.drain()
            sent += 1024
            with contextlib.suppress(asyncio.TimeoutError):
                answer = await asyncio.wait_for(reader.read(), 0.2)
                break
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.0 431 ") or answer.startswith(b"HTTP/1.1 431 ")
    assert sent <= 6 * 1024
    assert primary.seen == []


async def test_a_pipelined_head_is_bounded_too(primary: Backend, start_proxy: StartProxy) -> None:
    """A whole GET and, in the same write, the start of a head past the bound: the GET is answered, then 431."""
    proxy = await start_proxy(primary.url, listen={"max_head_bytes": 4096})
    first = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
    data = await _exchange(proxy, first + b"GET /second HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 8000)
    _assert_first_answered_then_431(data, primary)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_head_in_the_same_read_as_a_body_end_is_bounded_too(
    primary: Backend, start_proxy: StartProxy, whole: bool, chunked: bool
) -> None:
    """A POST's last body bytes (sized or chunked) and, in the same write, a head past the bound (whole or not):
    the POST is answered, then 431; the big head never reaches the primary."""
    proxy = await start_proxy(primary.url, listen={"max_head_bytes": 4096})
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 1"
    last = b"1\r\nx\r\n0\r\n\r\n" if chunked else b"x"
    data = await _exchange(
        proxy,
        b"POST /first HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n",
        last + _head(20_000, end=whole).replace(b"GET /echo", b"GET /second"),
    )
    _assert_first_answered_then_431(data, primary)


async def test_a_head_ending_across_two_reads_at_the_bound_is_served(primary: Backend, start_proxy: StartProxy) -> None:
    """A POST head just under the bound whose CRLF CRLF is split over two writes, the body after it, is served."""
    proxy = await start_proxy(primary.url, listen={"max_head_bytes": 4096})
    body = b"x" * 2000
    head = _head(4000, end=False).replace(b"GET", b"POST", 1) + b"Content-Length: 2000\r\n\r\n"
    assert len(head) <= 4096
    reader, writer = await connect(proxy)
    try:
        writer.write(head[:-1])  # ends with "\r\n\r"
        await writer.drain()
        await asyncio.sleep(0.1)  # two reads on the proxy's side
        writer.write(head[-1:] + body)
        await writer.drain()
        data = await _read_all(reader)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert primary.seen[-1].body == body


async def test_many_kept_alive_requests_are_not_summed(primary: Backend, start_proxy: StartProxy) -> None:
    """The bound is per head: 20 requests of 3 KB heads on one kept-alive connection all pass a 4 KiB bound."""
    proxy = await start_proxy(primary.url, listen={"max_head_bytes": 4096})
    reader, writer = await connect(proxy)
    try:
        for _ in range(20):
            writer.write(_head(3000).replace(b"Connection: close\r\n", b""))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
    finally:
        writer.close()
    assert len(primary.seen) == 20


# -- the proxy's own answers -------------------------------------------------------------

SECRET = "s3cr3t-0f-the-client"
OWN_ANSWERS = {
    "malformed_header": (f"GET /{SECRET} HTTP/1.1\r\nHost: a\r\nX Bad: {SECRET}\r\n\r\n", 400),
    "bad_method": (f"G@T /{SECRET} HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "smuggling": (f"POST /{SECRET} HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400),
    "bad_chunk": (f"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{SECRET}\r\n", 400),
    "line_too_long": (f"GET /echo HTTP/1.1\r\nHost: a\r\nX-Long: {SECRET * 4000}\r\n\r\n", 431),
    "too_many_headers": ("GET /echo HTTP/1.1\r\nHost: a\r\n" + f"X-S: {SECRET}\r\n" * 200 + "\r\n", 431),
    "userinfo_host": (f"GET /echo HTTP/1.1\r\nHost: {SECRET}@evil\r\n\r\n", 400),
    "connect": (f"CONNECT {SECRET}:443 HTTP/1.1\r\nHost: {SECRET}:443\r\n\r\n", 405),
    "foreign_target": (f"GET http://{SECRET}/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    "too_large_body": (f"POST /echo HTTP/1.1\r\nHost: a\r\nX-S: {SECRET}\r\nContent-Length: 999999999\r\n\r\n", 413),
}


@pytest.mark.parametrize(("raw", "status"), OWN_ANSWERS.values(), ids=OWN_ANSWERS.keys())
async def test_own_answers_are_short_plain_and_echo_nothing(
    raw: str, status: int, primary: Backend, start_proxy: StartProxy
) -> None:
    """Every refusal the proxy writes itself is short plain text, with no Server header and nothing of the request in it."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(url_of(proxy), raw.encode(), timeout=5)
    assert response.status == status
    assert response.header("Server") is None
    assert (response.header("Content-Type") or "").startswith("text/plain")
    assert len(response.body) < 100
    wire = response.status_line + "".join(f"{k}: {v}" for k, v in response.headers) + response.body.decode("latin-1")
    assert SECRET not in wire and "@evil" not in wire
    assert primary.seen == []


async def test_shed_answer_is_short_and_plain(primary: Backend, start_proxy: StartProxy) -> None:
    """The 503 at the connection cap is plain text with no Server header."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 1})
    reader, writer = await connect(proxy)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12")  # in progress: never evicted
        await writer.drain()
        await asyncio.sleep(0.1)
        response = await rawhttp.send(url_of(proxy), OK, timeout=5)
    finally:
        writer.close()
    assert response.status == 503
    assert response.header("Server") is None and (response.header("Content-Type") or "").startswith("text/plain")
    assert response.body == b"proxy at its connection limit\n"


# -- the head deadline -------------------------------------------------------------------


async def _served(proxy: ShadowDiff) -> bool:
    return (await rawhttp.send(url_of(proxy), OK, timeout=5)).status == 200


async def test_a_head_trickled_past_head_timeout_gets_408(primary: Backend, start_proxy: StartProxy) -> None:
    """A head trickled a byte at a time gets 408 and a close once listen.head_timeout passes, well before idle_timeout."""
    proxy = await start_proxy(primary.url, listen={"head_timeout": 0.5, "idle_timeout": 60})
    reader, writer = await connect(proxy)
    answer = b""
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
        for _ in range(100):  # 10 s at most
            writer.write(b"X")
            await writer.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                answer = await asyncio.wait_for(reader.read(), 0.1)
                break
        assert await _served(proxy)  # others are served meanwhile
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Server:" not in answer
    assert [s.raw_path for s in primary.seen] == ["/ok"]
    assert metrics(proxy).value("shadowdiff_request_head_timeouts_total") == 1


async def test_a_silent_new_connection_is_closed_at_head_timeout(primary: Backend, start_proxy: StartProxy) -> None:
    """A new connection that sends nothing is closed, with no answer, by listen.head_timeout, not idle_timeout."""
    proxy = await start_proxy(primary.url, listen={"head_timeout": 0.5, "idle_timeout": 60})
    reader, writer = await connect(proxy)
    try:
        assert await _read_all(reader, 10) == b""
    finally:
        writer.close()


async def test_an_idle_kept_alive_connection_outlives_head_timeout(primary: Backend, start_proxy: StartProxy) -> None:
    """Between requests only idle_timeout applies: a kept-alive connection silent for 3 head_timeouts is still served."""
    proxy = await start_proxy(primary.url, listen={"head_timeout": 0.3, "idle_timeout": 60})
    reader, writer = await connect(proxy)
    try:
        for _ in range(2):
            writer.write(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            await asyncio.sleep(0.9)
    finally:
        writer.close()
    assert len(primary.seen) == 2


# -- the connection cap ------------------------------------------------------------------


async def test_slow_heads_give_way_to_a_new_client_at_the_cap(primary: Backend, start_proxy: StartProxy) -> None:
    """20 connections trickling half a head hold a cap of 20; a new client still gets its 200, and evictions are counted."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 20, "head_timeout": 60})
    attackers = [await connect(proxy) for _ in range(20)]
    stop = asyncio.Event()

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /attack HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        for _ in range(50):  # 10 s at most
            if stop.is_set() or writer.is_closing():
                return
            with contextlib.suppress(ConnectionError):
                writer.write(b"s")
                await writer.drain()
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(trickle(w)) for _, w in attackers]
    try:
        await asyncio.sleep(0.8)  # past the eviction grace
        statuses = [(await rawhttp.send(url_of(proxy), OK, timeout=5)).status for _ in range(3)]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, writer in attackers:
            writer.close()
    assert statuses == [200, 200, 200]
    m = metrics(proxy)
    assert m.value("shadowdiff_connections_evicted_total", reason="slow_head") >= 1
    assert m.value("shadowdiff_connections_shed_total") == 0
    assert all(s.raw_path == "/ok" for s in primary.seen)


async def test_idle_connections_give_way_at_the_cap(primary: Backend, start_proxy: StartProxy) -> None:
    """Two kept-alive connections idle at a cap of 2: a new client is served, the longest idle is closed (idle)."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 2})
    idle = [await connect(proxy) for _ in range(2)]
    for reader, writer in idle:
        writer.write(b"GET /keep HTTP/1.1\r\nHost: a\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    await asyncio.sleep(0.7)  # past the eviction grace
    try:
        assert await _served(proxy)
        await asyncio.wait_for(idle[0][0].read(), 5)  # the rest of its answer, then EOF: the first to go idle is closed
        assert idle[0][0].at_eof()
    finally:
        for _, writer in idle:
            writer.close()
    assert metrics(proxy).value("shadowdiff_connections_evicted_total", reason="idle") == 1


async def test_requests_in_progress_are_never_evicted(primary: Backend, start_proxy: StartProxy) -> None:
    """At a cap of 3 held by requests whose bodies are still arriving, a new client gets 503; the three finish with 200."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 3})
    busy = [await connect(proxy) for _ in range(3)]
    for _, writer in busy:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab")
        await writer.drain()
    await asyncio.sleep(0.7)  # past the eviction grace
    try:
        shed = await rawhttp.send(url_of(proxy), OK, timeout=5)
        for _, writer in busy:
            writer.write(b"cd")
            await writer.drain()
        answers = [await _read_all(reader) for reader, _ in busy]
    finally:
        for _, writer in busy:
            writer.close()
    assert shed.status == 503
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
    m = metrics(proxy)
    assert m.value("shadowdiff_connections_evicted_total", reason="slow_head") == 0
    assert m.value("shadowdiff_connections_shed_total") == 1


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
async def test_a_header_flood_costs_what_the_bound_says(tmp_path, primary: Backend) -> None:
    """100 clients each sending a 1 MiB head (128 lines of 8 KiB: within the line and count limits) are all refused
    (431, or a reset when the proxy closes on bytes still arriving), and the serve process's RSS grows by less than 100 x 4 x listen.max_head_bytes (a generous margin over the
    ~2.6 x measured), where 0.4.0 held every head whole (~260 MB)."""
    config = f"primary: {{url: '{primary.url}'}}\nmirror: {{enabled: false}}\n"
    line = b"X-Flood: " + b"f" * 8180 + b"\r\n"
    async with serving(config=config, tmp_path=tmp_path) as served:
        await rawhttp.send(served.url, OK, timeout=5)  # warmed up: the first request's imports are not counted
        before = memory_bytes(served.process.pid) / 2**20
        connections = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(100)]
        answers = []
        try:
            for _, writer in connections:
                writer.write(b"GET /flood HTTP/1.1\r\nHost: a\r\n")
            for _ in range(128):  # 1 MiB each at most
                for _, writer in connections:
                    if not writer.is_closing():
                        writer.write(line)
                with contextlib.suppress(ConnectionError):
                    await asyncio.gather(*(w.drain() for _, w in connections if not w.is_closing()))
            peak = memory_bytes(served.process.pid) / 2**20
            for reader, _ in connections:
                try:
                    answers.append((await asyncio.wait_for(reader.read(200), 5)).split(b"\r\n")[0])
                except ConnectionError:
                    answers.append(b"reset")
        finally:
            for _, writer in connections:
                writer.close()
            served.process.terminate()
    assert len(answers) == 100 and all(answer == b"reset" or b" 431 " in answer for answer in answers), answers
    assert peak - before < 100 * 4 * 64 / 1024, (before, peak)
    assert primary.seen[1:] == []
