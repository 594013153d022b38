"""Slow, greedy and malformed clients: cut off at their deadlines, shed at the cap, refused with 400, never reaching a backend."""

from __future__ import annotations

import asyncio
import gzip
import time

import aiohttp
import pytest

from shadowdiff.service import ShadowDiff
from tests import rawhttp
from tests.backends import Backend
from tests.conftest import StartProxy, connect, metrics, serving, settle, url_of


async def _served(proxy: ShadowDiff) -> bool:
    response = await rawhttp.send(url_of(proxy), b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=2)
    return response.status == 200


async def _served_within(proxy: ShadowDiff, seconds: float) -> bool:
    """Whether a request is served within `seconds`, trying again while it is not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            if await _served(proxy):
                return True
        except (asyncio.TimeoutError, ConnectionError):
            pass
        await asyncio.sleep(0.05)
    return False


async def test_partial_headers_are_cut_off_while_others_are_served(primary: Backend, start_proxy: StartProxy) -> None:
    """A client that never finishes its request head is disconnected by listen.idle_timeout when it is the shorter
    deadline (head_timeout is tests/proxy/test_edge.py's); others are served meanwhile."""
    proxy = await start_proxy(primary.url, listen={"idle_timeout": 0.5})
    reader, writer = await connect(proxy)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ")
        await writer.drain()
        assert await _served(proxy)
        started = time.perf_counter()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the proxy, nothing answered
        assert time.perf_counter() - started < 2
    finally:
        writer.close()
    assert [s.raw_path for s in primary.seen] == ["/ok"]


async def test_client_that_stops_reading_is_cut_off(primary: Backend, start_proxy: StartProxy) -> None:
    """A client that never reads a large answer is disconnected after listen.idle_timeout; its primary connection is freed."""
    proxy = await start_proxy(primary.url, listen={"idle_timeout": 0.5}, primary={"max_connections": 1})
    reader, writer = await connect(proxy)
    try:
        writer.write(b"GET /large?size=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        await writer.drain()
        # Never read: buffers fill, the proxy's writes stall, and past idle_timeout the
        # client is cut and the only primary connection is free again.
        assert await _served_within(proxy, 6)
    finally:
        writer.close()


async def test_trickled_body_gets_408(primary: Backend, start_proxy: StartProxy) -> None:
    """A body that does not arrive within listen.request_timeout gets 408 and reaches no upstream; others are served meanwhile."""
    proxy = await start_proxy(primary.url, listen={"request_timeout": 0.5})
    reader, writer = await connect(proxy)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        assert await _served(proxy)
        started = time.perf_counter()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert time.perf_counter() - started < 2
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert [s.raw_path for s in primary.seen] == ["/ok"]


async def test_connection_cap_sheds_fast(primary: Backend, start_proxy: StartProxy) -> None:
    """Past listen.max_connections, with every connection busy, a new one gets an immediate 503 and is counted;
    freed capacity serves again. (Waiting connections give way instead: tests/proxy/test_edge.py.)"""
    proxy = await start_proxy(primary.url, listen={"max_connections": 3})
    held = [await connect(proxy) for _ in range(3)]  # accepted in order: these three are counted first
    for _, writer in held:  # a body still arriving: a request in progress, never evicted
        writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12")
        await writer.drain()
    started = time.perf_counter()
    shed = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", timeout=2)
    assert shed.status == 503
    assert time.perf_counter() - started < 0.5
    assert metrics(proxy).value("shadowdiff_connections_shed_total") == 1
    for _, writer in held:
        writer.close()
    assert await _served_within(proxy, 5)  # freed capacity serves again, once the proxy has seen the closes


async def test_connection_cap_holds_for_a_burst(primary: Backend, start_proxy: StartProxy) -> None:
    """Ten connections opened at once against a cap of 3: at most 3 are served, the rest get 503."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 3})
    connections = await asyncio.gather(*(connect(proxy) for _ in range(10)))
    try:
        for _, writer in connections:
            writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        answers = await asyncio.gather(*(asyncio.wait_for(reader.read(), 5) for reader, _ in connections))
    finally:
        for _, writer in connections:
            writer.close()
    statuses = sorted(int(a.split(b" ")[1]) for a in answers)
    assert statuses.count(200) <= 3 and statuses.count(503) >= 7
    assert metrics(proxy).value("shadowdiff_connections_shed_total") == statuses.count(503)


async def test_connection_cap_under_uvloop(tmp_path, primary: Backend) -> None:
    """In a real `serve` process (uvloop), the connection past the cap gets the 503, not a reset."""
    config = f"primary: {{url: '{primary.url}'}}\nmirror: {{enabled: false}}\nlisten: {{max_connections: 3}}\n"
    held = []
    async with serving(config=config, tmp_path=tmp_path) as served:
        try:
            held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]  # accepted in order
            for _, writer in held:  # requests in progress: never evicted
                writer.write(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12")
                await writer.drain()
            shed = await rawhttp.send(served.url, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", timeout=5)
            assert shed.status == 503
        finally:
            for _, writer in held:
                writer.close()
            served.process.terminate()
    assert b"Traceback" not in served.out + served.err


# -- malformed requests and smuggling shapes ------------------------------------------------

SMUGGLING = {
    "cl_and_te": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate_cl_same": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_different": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "cl_list": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    "plus_cl": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
    "obs_fold": b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
    "bad_chunk_size": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "huge_chunk_size": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk_ext_bare_lf": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n",
    "te_not_chunked_last": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te_obfuscated": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te_space_before_colon": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "te_in_http10": b"POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bare_lf_head": b"GET /echo HTTP/1.1\nHost: a\n\n",
    "space_in_header_name": b"GET /echo HTTP/1.1\r\nHost: a\r\nX Bad: 1\r\n\r\n",
    "nul_in_header": b"GET /echo HTTP/1.1\r\nHost: a\r\nX-N: a\x00b\r\n\r\n",
    "two_hosts": b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no_host_http11": b"GET /echo HTTP/1.1\r\n\r\n",
    "unknown_version": b"GET /echo HTTP/9.9\r\nHost: a\r\n\r\n",
    "bad_method": b"G@T /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32 + b"\r\n\r\n",
}


@pytest.mark.parametrize("raw", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_malformed_requests_get_400_and_reach_no_backend(
    raw: bytes, primary: Backend, shadow: Backend, start_proxy: StartProxy
) -> None:
    """Request-smuggling shapes and malformed heads get 400, reach neither backend, and are counted."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["GET", "POST"]})
    response = await rawhttp.send(url_of(proxy), raw, timeout=3)
    await settle(proxy)
    assert response.status == 400
    assert primary.seen == [] and shadow.seen == []
    m = metrics(proxy)
    assert m.value("shadowdiff_malformed_requests_total") + m.value("shadowdiff_requests_total", status="400") == 1


BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KB that would expand to 64 MB


async def test_request_bomb_is_relayed_unexpanded(primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """A gzip request body is relayed as the compressed bytes; the proxy never inflates it."""
    proxy = await start_proxy(primary.url, listen={"max_request_body_bytes": 1024 * 1024})
    async with client.post(url_of(proxy) + "/echo", data=BOMB, headers={"Content-Encoding": "gzip"}) as response:
        assert response.status == 200
    assert primary.seen[-1].body == BOMB
