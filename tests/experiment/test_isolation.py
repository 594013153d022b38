"""The primary path never pays for the shadow: keep-alive independence, bounded shutdown, primary failures.

Every kind of misbehaving shadow is in test_faults.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.backends import Backend, free_port
from tests.conftest import StartProxy, metrics, settle, url_of
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


async def test_primary_refusing_is_502_and_sends_nothing_to_the_shadow(
    shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A primary that refuses connections gives the client a short 502; the shadow gets no copy."""
    proxy = await start_proxy(f"http://127.0.0.1:{free_port()}", shadow.url)
    async with client.get(url_of(proxy) + "/x") as response:
        assert response.status == 502
        text = await response.text()
    assert "Traceback" not in text and len(text) < 200
    await settle(proxy)
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="connect") == 1
    assert m.value("shadowdiff_requests_total", status="502") == 1
    assert m.value("shadowdiff_comparisons_total") == 0
    assert shadow.seen == []


async def test_primary_slower_than_its_timeout_is_504(shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """A primary silent past primary.timeout gives 504 at about the deadline, counted as a timeout."""
    slow = await Backend("slow-primary", delay=3.0).start()
    try:
        proxy = await start_proxy(slow.url, shadow.url, primary={"timeout": 0.3})
        started = time.perf_counter()
        async with client.get(url_of(proxy) + "/x") as response:
            assert response.status == 504
        assert time.perf_counter() - started < 2.0
    finally:
        await slow.stop()
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="primary", kind="timeout") == 1
    assert m.value("shadowdiff_comparisons_total") == 0
