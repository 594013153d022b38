"""The primary never pays for the shadow: whatever the shadow does, the client's answers and latency hold."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import statistics
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from shadowdiff.service import ShadowDiff
from tests.backends import Backend, free_port
from tests.conftest import StartProxy, metrics, settle, until, url_of
from tests.faults import FaultServer


@pytest.fixture
async def slow_shadow() -> AsyncIterator[Backend]:
    backend = await Backend("slow-shadow", delay=2.0).start()
    yield backend
    await backend.stop()


@pytest.fixture
async def black_hole() -> AsyncIterator[FaultServer]:
    hole = await FaultServer("black_hole").start()
    yield hole
    await hole.stop()


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


async def test_slow_shadow_does_not_hold_up_the_next_keep_alive_request(
    primary: Backend, slow_shadow: Backend, start_proxy: StartProxy
) -> None:
    """Two requests in a row on one client connection both return at primary speed while the shadow takes 2 s."""
    proxy = await start_proxy(primary.url, slow_shadow.url)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        for _ in range(2):
            async with session.get(url_of(proxy) + "/a") as response:
                await response.read()
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # the shadow alone takes 2 s per request
    assert proxy.mirror.in_flight == 2


async def test_shutdown_cancels_shadow_work_past_the_drain_deadline(
    primary: Backend, black_hole: FaultServer, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """stop() returns within the drain deadline with a black-holed shadow, and leaves no shadow task behind."""
    proxy = await start_proxy(primary.url, black_hole.url, mirror={"drain_timeout": 0.2}, shadow={"timeout": 30})
    for _ in range(3):
        async with client.get(url_of(proxy) + "/x") as response:
            await response.read()
    assert proxy.mirror.in_flight == 3
    started = time.perf_counter()
    await proxy.stop()
    assert time.perf_counter() - started < 5
    assert proxy.mirror.in_flight == 0
    assert metrics(proxy).value("shadowdiff_shadow_in_flight") == 0
    shadow_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("shadow ")]
    assert shadow_tasks == []


async def test_garbage_from_the_shadow_is_counted_not_raised(
    primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, raw_backend
) -> None:
    """A shadow answering a non-HTTP status line is a protocol error in the counters; the client gets the primary's answer."""
    garbage = await raw_backend(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    proxy = await start_proxy(primary.url, garbage.url)
    for _ in range(3):
        async with client.get(url_of(proxy) + "/echo") as response:
            assert response.status == 200
            assert (await response.json())["raw_path"] == "/echo"
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="shadow", kind="protocol") == 3
    assert m.value("shadowdiff_comparisons_total", outcome="shadow_error") == 3
    assert m.value("shadowdiff_mirrored_total") == 3


async def test_long_primary_stream_does_not_pin_shadow_slots(
    shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, raw_backend
) -> None:
    """A primary still streaming past shadow.timeout frees its slot (counted primary_unfinished) so other copies still go out."""
    trickle = await raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")  # the body never comes
    try:
        proxy = await start_proxy(trickle.url, shadow.url, mirror={"max_in_flight": 1}, shadow={"timeout": 0.3}, primary={"timeout": 5})
        stuck = asyncio.ensure_future(client.get(url_of(proxy) + "/stream"))
        await until(lambda: proxy.mirror.in_flight == 1)
        await until(lambda: proxy.mirror.in_flight == 0)  # shadow.timeout after the shadow answered
        assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="primary_unfinished") == 1
    finally:
        if stuck.done() and not stuck.cancelled() and stuck.exception() is None:
            stuck.result().close()  # the head arrived: the response is ours to close
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck


BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # ~64 KB that would expand to 64 MB


OTHER_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=1)


async def test_response_bomb_is_relayed_and_never_expanded_by_the_diff(
    start_proxy: StartProxy, client: aiohttp.ClientSession, raw_backend
) -> None:
    """A gzip bomb from both legs reaches the client compressed; the diff engine stops at its cap and counts both bodies."""
    servers = []
    for bomb in (BOMB, OTHER_BOMB):  # not byte-identical, so the engine has to look inside
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
        servers.append(await raw_backend(head.encode() + bomb))
    proxy = await start_proxy(servers[0].url, servers[1].url, compare={"max_decoded_bytes": 1024 * 1024})
    async with client.get(url_of(proxy) + "/bomb") as response:
        assert await response.read() == BOMB
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_bodies_too_large_total", upstream="primary") == 1
    assert m.value("shadowdiff_bodies_too_large_total", upstream="shadow") == 1
    assert m.value("shadowdiff_comparisons_total", outcome="match") == 1  # bodies left uncompared, nothing else differs
    assert m.value("shadowdiff_upstream_errors_total") == 0
