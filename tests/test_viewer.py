"""`shadowdiff ui`: the UI and API over a store a proxy left, with no proxy running."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.backends import free_port
from tests.conftest import StartProxy, drive, serve_until_exit

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


async def test_ui_on_a_store_no_proxy_created_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """`shadowdiff ui --store` on a file that does not exist is a `store error:` (exit 2) saying a proxy
    creates it, and leaves no file behind (the UI only reads)."""
    missing = tmp_path / "none.db"
    code, err = await serve_until_exit("--store", f"sqlite:///{missing}", "--admin", "127.0.0.1:0", command="ui")
    assert code == 2 and err.startswith(b"store error: cannot read the store") and b"a proxy with this store.url creates it" in err
    assert not missing.exists()
