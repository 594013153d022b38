"""The proxy's lifecycle: start-up with an unreachable shadow, shutdown under load."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from tests.backends import Backend, free_port
from tests.conftest import StartProxy, metrics, serving, until, url_of
from tests.faults import FaultServer


async def test_unreachable_shadow_at_start_is_reported_and_the_primary_served(
    primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shadow nobody listens on: a shadow_unreachable log line and upstream_up 0, while the primary is served."""
    proxy = await start_proxy(primary.url, f"http://127.0.0.1:{free_port()}")
    assert '"event":"shadow_unreachable"' in capsys.readouterr().out
    assert metrics(proxy).value("shadowdiff_upstream_up", upstream="shadow") == 0
    async with client.get(url_of(proxy) + "/x") as response:
        assert response.status == 200


async def test_sigterm_under_load_finishes_in_flight_requests(tmp_path, shadow: Backend) -> None:
    """On SIGTERM: no new connections, every in-flight response finishes whole, shadow work is cut at its deadline, exit 0."""
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
            await until(lambda: len(slow.seen) == 10)  # all ten are waiting on the 1 s primary
            started = time.perf_counter()
            served.process.send_signal(signal.SIGTERM)
            await until_refused(served.url)
            results = await asyncio.gather(*in_flight)
            code = await asyncio.wait_for(served.process.wait(), 15)
            elapsed = time.perf_counter() - started
    finally:
        await slow.stop()
        await hole.stop()
    assert results == [(200, size)] * 10  # nothing cut mid-body
    assert code == 0
    assert elapsed < 5  # the in-flight second, plus the 0.5 s shadow drain, not the shadow's 30 s


async def until_refused(url: str, timeout: float = 5.0) -> None:
    """Until a new connection to `url` is refused (the listener has closed)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except (ConnectionRefusedError, ConnectionResetError):  # closed, or closing as we connected
            return
        writer.close()
        await asyncio.sleep(0.02)
    raise AssertionError("the listener still accepts connections")
