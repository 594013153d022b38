"""Fault injection: misbehaving shadows, primaries and clients, each checked from the client's side and in the counters."""

from __future__ import annotations

import asyncio
import gzip
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from shadowdiff.service import ShadowDiff
from tests import rawhttp
from tests.backends import Backend, free_port, serve_app
from tests.conftest import StartProxy, connect, metrics, serving, settle, url_of
from tests.faults import FaultServer

REQUESTS = 12
CAP = 4
SHADOW_BOUNDS = {"mirror": {"max_in_flight": CAP}, "shadow": {"timeout": 1.0, "connect_timeout": 0.5}}

# mode -> the error kind the shadow's failure is counted as
SHADOW_FAULTS = {
    "delay": "timeout",
    "black_hole": "timeout",
    "refusing": "connect",
    "reset_mid_body": "reset",
    "garbage_status": "protocol",
    "cl_te_conflict": "protocol",
    "short_body": "reset",
    "trickle": "timeout",
}


@pytest.fixture
async def fault_server(request: pytest.FixtureRequest) -> AsyncIterator[FaultServer | None]:
    mode = request.param
    if mode == "refusing":
        yield None
        return
    server = await FaultServer(mode, delay=2.0, interval=0.3).start()
    yield server
    await server.stop()


async def _drive(client: aiohttp.ClientSession, proxy: ShadowDiff, peak: list[int]) -> tuple[list[float], list[bytes]]:
    latencies, bodies = [], []
    for i in range(REQUESTS):
        started = time.perf_counter()
        async with client.get(url_of(proxy) + f"/items/{i}") as response:
            assert response.status == 200
            bodies.append(await response.read())
        latencies.append(time.perf_counter() - started)
        peak.append(proxy.mirror.in_flight)
    return latencies, bodies


@pytest.mark.parametrize("fault_server", list(SHADOW_FAULTS), indirect=True)
async def test_shadow_faults_never_reach_the_client(
    fault_server: FaultServer | None,
    request: pytest.FixtureRequest,
    primary: Backend,
    shadow: Backend,
    start_proxy: StartProxy,
    client: aiohttp.ClientSession,
) -> None:
    """Whatever the shadow does, the client's answers and latency match the healthy-shadow run; the fault is counted by kind; in-flight stays under the cap; nothing is left running."""
    mode = request.node.callspec.params["fault_server"]
    bad_url = fault_server.url if fault_server else f"http://127.0.0.1:{free_port()}"
    healthy = await start_proxy(primary.url, shadow.url, **SHADOW_BOUNDS)
    bad = await start_proxy(primary.url, bad_url, **SHADOW_BOUNDS)

    healthy_latency, healthy_bodies = await _drive(client, healthy, [])
    peak: list[int] = []
    bad_latency, bad_bodies = await _drive(client, bad, peak)

    assert bad_bodies == healthy_bodies
    assert statistics.median(bad_latency) <= 3 * statistics.median(healthy_latency) + 0.05
    assert max(bad_latency) < 0.9  # under the shadow's own 1 s deadline: nobody waited for it
    assert max(peak) <= CAP

    await settle(bad, timeout=15)
    m = metrics(bad)
    mirrored = m.value("shadowdiff_mirrored_total")
    assert mirrored + m.value("shadowdiff_mirror_skipped_total", reason="overload") == REQUESTS
    assert m.value("shadowdiff_upstream_errors_total", upstream="shadow", kind=SHADOW_FAULTS[mode]) == mirrored > 0
    assert m.value("shadowdiff_comparisons_total", outcome="shadow_error") == mirrored
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary") == 0
    # Drained by itself, before any stop() could cancel it.
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("shadow ")] == []


# -- the primary misbehaving ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "kind"), [("garbage_status", "protocol"), ("cl_te_conflict", "protocol"), ("black_hole", "timeout")]
)
async def test_primary_that_cannot_answer_gets_a_gateway_error(
    mode: str, kind: str, shadow: Backend, start_proxy: StartProxy
) -> None:
    """Garbage or ambiguous framing from the primary is a 502; silence past primary.timeout a 504 at the deadline."""
    server = await FaultServer(mode).start()
    try:
        proxy = await start_proxy(server.url, shadow.url, primary={"timeout": 0.5})
        started = time.perf_counter()
        response = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        elapsed = time.perf_counter() - started
    finally:
        await server.stop()
    assert response.status == (504 if kind == "timeout" else 502)
    assert elapsed < 2.0
    assert b"Traceback" not in response.body
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind=kind) == 1
    assert shadow.seen == []  # no answer head from the primary: no copy sent


async def test_primary_silent_mid_body_cuts_the_client(shadow: Backend, start_proxy: StartProxy) -> None:
    """A primary that goes quiet mid-body past primary.timeout has the client's connection cut, never completed."""
    server = await FaultServer("trickle", body=b"x" * 50, interval=2.0).start()
    try:
        proxy = await start_proxy(server.url, shadow.url, primary={"timeout": 0.3})
        response = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=5)
    finally:
        await server.stop()
    assert response.status == 200 and not response.complete
    assert metrics(proxy).value("shadowdiff_upstream_errors_total", upstream="primary", kind="timeout") == 1


# -- slow and greedy clients ---------------------------------------------------------------


async def _served(proxy: ShadowDiff) -> bool:
    response = await rawhttp.send(url_of(proxy), b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=2)
    return response.status == 200


async def test_partial_headers_are_cut_off_while_others_are_served(primary: Backend, start_proxy: StartProxy) -> None:
    """A client that never finishes its request head is disconnected after listen.idle_timeout; others are served meanwhile."""
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
        await asyncio.sleep(2.0)  # never read: buffers fill, the proxy's writes stall
        assert await _served(proxy)  # the only primary connection is free again
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
    """Past listen.max_connections a new connection gets an immediate 503 and is counted; freed capacity serves again."""
    proxy = await start_proxy(primary.url, listen={"max_connections": 3})
    held = [await connect(proxy) for _ in range(3)]
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    shed = await rawhttp.send(url_of(proxy), b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", timeout=2)
    assert shed.status == 503
    assert time.perf_counter() - started < 0.5
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    assert await _served(proxy)
    assert metrics(proxy).value("shadowdiff_connections_shed_total") == 1


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
            held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
            await asyncio.sleep(0.1)
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


# -- upgrades ---------------------------------------------------------------------------


@dataclass
class WebSocketPrimary:
    url: str
    seen_close: list  # (type, code, reason) of the close frames the primary received


@pytest.fixture
async def websocket_primary() -> AsyncIterator[WebSocketPrimary]:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        await ws.send_str("hello " + request.headers.get("X-Who", "?"))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def hang_up(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()
        await ws.close(code=4001, message=b"bye")
        return ws

    async def client_closes(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        seen_close.append((message.type, message.data, message.extra))
        return ws

    async def private(request: web.Request) -> web.Response:
        return web.Response(status=401, text="who are you", headers={"WWW-Authenticate": 'Bearer realm="ws"'})

    seen_close: list = []
    app = web.Application()
    app.router.add_get("/ws", echo)
    app.router.add_get("/hang-up", hang_up)
    app.router.add_get("/client-closes", client_closes)
    app.router.add_get("/private", private)
    runner, url = await serve_app(app)
    yield WebSocketPrimary(url, seen_close)
    await runner.cleanup()


async def test_websocket_is_relayed_both_ways_and_not_mirrored(
    websocket_primary: WebSocketPrimary, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Frames flow both ways through the proxy with the primary's subprotocol, past primary.timeout of idleness; the shadow gets nothing."""
    proxy = await start_proxy(websocket_primary.url, shadow.url, primary={"timeout": 0.3})
    async with client.ws_connect(url_of(proxy) + "/ws", protocols=("chat", "other"), headers={"X-Who": "ann"}) as ws:
        assert ws.protocol == "chat"
        assert await ws.receive_str(timeout=2) == "hello ann"
        await asyncio.sleep(0.6)  # idle past primary.timeout: a WebSocket has no read deadline
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=2) == "echo:hi"
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes(timeout=2) == b"cba"
    for _ in range(100):  # the handler returns once both directions have closed
        if metrics(proxy).value("shadowdiff_requests_total", status="101") == 1:
            break
        await asyncio.sleep(0.02)
    assert metrics(proxy).value("shadowdiff_requests_total", status="101") == 1
    await settle(proxy)
    assert shadow.seen == []


async def test_websocket_refused_by_the_primary_keeps_its_status(
    websocket_primary: WebSocketPrimary, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A primary that refuses the upgrade (404, 401 with WWW-Authenticate) gives the client that status and its headers."""
    proxy = await start_proxy(websocket_primary.url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(url_of(proxy) + "/nowhere")
    assert refused.value.status == 404
    with pytest.raises(aiohttp.WSServerHandshakeError) as unauthorized:
        await client.ws_connect(url_of(proxy) + "/private")
    assert unauthorized.value.status == 401
    assert unauthorized.value.headers["WWW-Authenticate"] == 'Bearer realm="ws"'
    assert unauthorized.value.headers["Via"] == "1.1 shadowdiff"


async def test_websocket_close_codes_pass_through(
    websocket_primary: WebSocketPrimary, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """The primary's close code and reason reach the client, and the client's reach the primary."""
    proxy = await start_proxy(websocket_primary.url)
    async with client.ws_connect(url_of(proxy) + "/hang-up") as ws:
        await ws.send_str("anything")
        message = await ws.receive(timeout=2)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert (message.data, message.extra) == (4001, "bye")
    async with client.ws_connect(url_of(proxy) + "/client-closes") as ws:
        await ws.close(code=4002, message=b"done")
    for _ in range(100):
        if websocket_primary.seen_close:
            break
        await asyncio.sleep(0.02)
    assert [(data, extra) for _, data, extra in websocket_primary.seen_close] == [(4002, "done")]


async def test_h2c_upgrade_is_never_forwarded(primary: Backend, start_proxy: StartProxy) -> None:
    """An h2c upgrade is declined: answered over HTTP/1.1 with the connection closed after it, and the primary sees no Upgrade."""
    proxy = await start_proxy(primary.url)
    response = await rawhttp.send(
        url_of(proxy),
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.values("Connection") == ["close"]  # a request pipelined behind it is retried, not lost
    assert [s.raw_path for s in primary.seen] == ["/echo"]
    assert not primary.seen[0].has("Upgrade") and not primary.seen[0].has("HTTP2-Settings")


# -- compression bombs ----------------------------------------------------------------------

BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KB that would expand to 64 MB
OTHER_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=1)


async def test_request_bomb_is_relayed_unexpanded(primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """A gzip request body is relayed as the compressed bytes; the proxy never inflates it."""
    proxy = await start_proxy(primary.url, listen={"max_request_body_bytes": 1024 * 1024})
    async with client.post(url_of(proxy) + "/echo", data=BOMB, headers={"Content-Encoding": "gzip"}) as response:
        assert response.status == 200
    assert primary.seen[-1].body == BOMB


async def test_response_bomb_is_relayed_and_never_expanded_by_the_diff(
    start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A gzip bomb from both legs reaches the client compressed; the diff engine stops at its cap and counts both bodies."""
    servers = []
    for bomb in (BOMB, OTHER_BOMB):  # not byte-identical, so the engine has to look inside
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        server = FaultServer("ok", body=bomb)
        server._head = lambda length, head=head: head.encode()  # the bomb's own head
        servers.append(await server.start())
    try:
        proxy = await start_proxy(servers[0].url, servers[1].url, compare={"max_decoded_bytes": 1024 * 1024})
        async with client.get(url_of(proxy) + "/bomb") as response:
            assert await response.read() == BOMB
        await settle(proxy)
    finally:
        for server in servers:
            await server.stop()
    m = metrics(proxy)
    assert m.value("shadowdiff_bodies_too_large_total", upstream="primary") == 1
    assert m.value("shadowdiff_bodies_too_large_total", upstream="shadow") == 1
    assert m.value("shadowdiff_comparisons_total", outcome="match") == 1  # bodies left uncompared, nothing else differs
    assert m.value("shadowdiff_upstream_errors_total") == 0


# -- series stay bounded ----------------------------------------------------------------------


async def test_metric_series_bounded_after_10000_random_paths(primary: Backend, start_proxy: StartProxy) -> None:
    """10,000 requests to random paths leave at most 201 route label values on every metric."""
    import random
    import string

    proxy = await start_proxy(primary.url)
    rng = random.Random(3)
    paths = ["/" + "/".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(2)) for _ in range(10_000)]
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(paths)

        async def worker() -> None:
            for path in queue:
                async with session.get(url_of(proxy) + path) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(32)))
    m = metrics(proxy)
    assert len(primary.seen) == 10_000
    for name in ("shadowdiff_requests_total", "shadowdiff_upstream_responses_total"):
        assert len(m.label_values(name, "route")) <= 201, name


# -- start-up ------------------------------------------------------------------------------


async def test_unreachable_shadow_at_start_is_reported_and_the_primary_served(
    primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shadow nobody listens on: a shadow_unreachable log line and upstream_up 0, while the primary is served."""
    proxy = await start_proxy(primary.url, f"http://127.0.0.1:{free_port()}")
    assert '"event":"shadow_unreachable"' in capsys.readouterr().out
    assert metrics(proxy).value("shadowdiff_upstream_up", upstream="shadow") == 0
    async with client.get(url_of(proxy) + "/x") as response:
        assert response.status == 200


# -- shutdown under load ----------------------------------------------------------------------


async def test_sigterm_under_load_finishes_in_flight_requests(tmp_path, shadow: Backend) -> None:
    """On SIGTERM: no new connections, every in-flight response finishes whole, shadow work is cut at its deadline, exit 0."""
    import signal

    slow = await Backend("slow", delay=1.0).start()
    hole = await FaultServer("black_hole").start()
    config = (
        f"primary: {{url: '{slow.url}'}}\nshadow: {{url: '{hole.url}', timeout: 30}}\n"
        "listen: {shutdown_timeout: 10}\nmirror: {drain_timeout: 0.5}\n"
    )
    size = 2_000_000
    try:
        async with serving(config=config, tmp_path=tmp_path) as served, aiohttp.ClientSession() as client:

            async def fetch() -> tuple[int, int]:
                async with client.get(served.url + f"/large?size={size}") as response:
                    return response.status, len(await response.read())

            in_flight = [asyncio.ensure_future(fetch()) for _ in range(10)]
            await asyncio.sleep(0.4)  # all ten are waiting on the 1 s primary
            started = time.perf_counter()
            served.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            with pytest.raises(aiohttp.ClientConnectionError):
                async with client.get(served.url + "/late") as late:
                    await late.read()
            results = await asyncio.gather(*in_flight)
            code = await asyncio.wait_for(served.process.wait(), 15)
            elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
        await hole.stop()
    assert results == [(200, size)] * 10  # nothing cut mid-body
    assert code == 0
    assert elapsed < 5  # the in-flight second, plus the 0.5 s shadow drain, not the shadow's 30 s
