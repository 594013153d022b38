"""`shadowdiff ui`: the UI and API over a store a proxy left, with no proxy running."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.backends import free_port
from tests.conftest import StartProxy, drive

USERS = "/users/{id}"


async def test_ui_serves_what_a_stopped_proxy_left_in_its_store(
    store_apps: dict[str, str], start_proxy: StartProxy, tmp_path: Path
) -> None:
    """After the proxy stopped, `shadowdiff ui --store URL` answers /api/v1/routes and samples from the
    file, needs no primary or shadow, and exits 0 on SIGTERM."""
    url = f"sqlite:///{tmp_path}/left.db"
    proxy = await start_proxy(store_apps["primary"], store_apps["shadow"], store={"url": url}, routes=[USERS])
    await drive(proxy, [f"/users/{n}" for n in range(6)])
    await proxy.stop()

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowdiff", "ui", "--store", url, "--admin", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        started = await asyncio.wait_for(process.stdout.readline(), 20)
        assert b'"event":"ui_started"' in started, started
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{port}/api/v1/routes") as response:
                assert response.status == 200
                view = await response.json()
            async with client.get(f"http://127.0.0.1:{port}/api/v1/samples?route={USERS}") as response:
                samples = (await response.json())["samples"]
        [users] = [row for row in view["routes"] if row["route"] == USERS]
        assert users["comparisons"]["mismatch"] == 3 and view["store"] == url
        assert len(samples) == 3
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()
