"""`shadowdiff serve --workers N`: processes sharing one port, metrics summed, lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.backends import Backend, free_port
from tests.collectors import scrapes_within_one_interval
from tests.conftest import Served, serve_until_exit, serving
from tests.metrics_text import MetricsReader


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


async def until_ready(served: Served, client: aiohttp.ClientSession, timeout: float = 20.0) -> None:
    """Until /readyz says every worker is ready."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            async with client.get(served.admin_url + "/readyz") as response:
                if response.status == 200 and "workers ready: 2/2" in await response.text():
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the supervisor never became ready")


async def scrape(served: Served, client: aiohttp.ClientSession) -> MetricsReader:
    async with client.get(served.admin_url + "/metrics") as response:
        assert response.status == 200
        return MetricsReader(await response.text())


async def get_each_on_its_own_connection(url: str, count: int) -> list[int]:
    # A new connection each time, so the kernel spreads them over the workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
        statuses = []
        for i in range(count):
            async with client.get(f"{url}/item/{i}") as response:
                await response.read()
                statuses.append(response.status)
        return statuses


def two_workers(primary_url: str, shadow_url: str) -> dict:
    """A raw config for a supervisor of two workers on free loopback ports."""
    return {
        "listen": {"address": f"127.0.0.1:{free_port()}", "workers": 2},
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "primary": {"url": primary_url},
        "shadow": {"url": shadow_url},
    }


async def settled(served: Served, client: aiohttp.ClientSession, mirrored: int, timeout: float = 10.0) -> MetricsReader:
    """The summed metrics once `mirrored` comparisons and shadow answers are in (workers flush gauges each
    second, and one scrape reads each worker's counter and histogram files at different moments)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reader = await scrape(served, client)
        if (
            reader.value("shadowdiff_comparisons_total") >= mirrored
            and reader.value("shadowdiff_upstream_duration_seconds_count", upstream="shadow") >= mirrored
            and reader.value("shadowdiff_shadow_in_flight") == 0
        ):
            return reader
        if loop.time() > deadline:
            return reader
        await asyncio.sleep(0.2)


async def test_workers_share_the_port_and_their_metrics_add_up(primary: Backend, shadow: Backend) -> None:
    """Two worker processes serve one port; the supervisor's /metrics is the sum of both."""
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--workers", "2") as served:
        async with aiohttp.ClientSession() as client:
            await until_ready(served, client)
            assert len(children(served.process.pid)) == 2
            statuses = await get_each_on_its_own_connection(served.url, 40)
            assert statuses == [200] * 40
            reader = await settled(served, client, 40)
        assert reader.value("shadowdiff_requests_total", status="200") == 40
        assert reader.value("shadowdiff_mirrored_total") == 40
        assert reader.value("shadowdiff_comparisons_total", outcome="match") == 40
        assert reader.value("shadowdiff_upstream_duration_seconds_count", upstream="shadow") == 40
        assert reader.value("shadowdiff_shadow_in_flight") == 0
        assert reader.value("shadowdiff_upstream_up", upstream="primary") == 1
        assert len(primary.seen) == 40 and len(shadow.seen) == 40
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), 20) == 0


async def test_a_dead_worker_is_replaced_and_counts_are_kept(primary: Backend) -> None:
    """A worker killed mid-life is restarted; the port keeps answering and counters never go back."""
    async with serving("--primary", primary.url, "--shadow", primary.url, "--workers", "2") as served:
        async with aiohttp.ClientSession() as client:
            await until_ready(served, client)
            assert await get_each_on_its_own_connection(served.url, 10) == [200] * 10
            # A worker counts a request just after its answer is sent: kill only once all 10 are counted.
            await settled(served, client, 10)
            before = children(served.process.pid)
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                now = children(served.process.pid)
                if len(now) == 2 and victim not in now:
                    break
                await asyncio.sleep(0.1)
            assert len(now) == 2 and victim not in now, now
            await until_ready(served, client)
            assert await get_each_on_its_own_connection(served.url, 10) == [200] * 10
            reader = await scrape(served, client)
        assert reader.value("shadowdiff_requests_total", status="200") == 20
        served.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(served.process.wait(), 20)
        assert code == 0
        assert not children(served.process.pid)
    assert b"worker_exited" in served.out


def test_workers_must_be_positive(capsys) -> None:
    """--workers 0 is a config error naming listen.workers, exit 2."""
    from shadowdiff.cli import main

    assert main(["serve", "--primary", "http://127.0.0.1:9", "--shadow", "http://127.0.0.1:9", "--workers", "0"]) == 2
    assert "listen.workers" in capsys.readouterr().err


async def test_workers_do_not_outlive_a_killed_supervisor(primary: Backend) -> None:
    """SIGKILL to the supervisor: its workers notice (their stdin closes) and stop on their own."""
    async with serving("--primary", primary.url, "--shadow", primary.url, "--workers", "2") as served:
        async with aiohttp.ClientSession() as client:
            await until_ready(served, client)
        workers = children(served.process.pid)
        assert len(workers) == 2
        served.process.kill()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline and any(os.path.exists(f"/proc/{pid}/stat") and _alive(pid) for pid in workers):
            await asyncio.sleep(0.1)
        assert not any(os.path.exists(f"/proc/{pid}/stat") and _alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_a_second_instance_cannot_share_the_port(primary: Backend) -> None:
    """Another `--workers` shadowdiff already on the port: exit 1, not a silent split of its traffic."""
    async with serving("--primary", primary.url, "--shadow", primary.url, "--workers", "2") as served:
        async with aiohttp.ClientSession() as client:
            await until_ready(served, client)
        code, err = await serve_until_exit(
            "--primary", primary.url, "--shadow", primary.url,
            "--workers", "2", "--listen", f"127.0.0.1:{served.port}", "--admin", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
        assert code == 1
        assert f"127.0.0.1:{served.port}".encode() in err and b"Traceback" not in err


async def test_a_new_config_reaches_every_worker(primary: Backend, shadow: Backend) -> None:
    """Supervisor.update() sends the live part of a config to each worker over its channel: mirroring paused
    there takes effect at once on both; a change that needs a restart is refused and sends nothing."""
    from shadowdiff import config as configuration
    from shadowdiff.runtime import RestartRequired
    from shadowdiff.workers.supervisor import Supervisor

    raw = two_workers(primary.url, shadow.url)
    supervisor = Supervisor(configuration.from_mapping(raw))
    stop = asyncio.Event()
    running = asyncio.ensure_future(supervisor.run(stop))
    url = f"http://{raw['listen']['address']}"
    try:
        async with aiohttp.ClientSession() as client:
            served = Served(None, 0, int(raw["admin"]["listen"].rsplit(":", 1)[1]))  # type: ignore[arg-type]
            await until_ready(served, client)
            assert await get_each_on_its_own_connection(url, 10) == [200] * 10
            paused = configuration.from_mapping({**raw, "mirror": {"enabled": False}})
            await supervisor.update(paused)
            with_restart = configuration.from_mapping({**raw, "listen": {**raw["listen"], "workers": 3}})
            with pytest.raises(RestartRequired, match="listen.workers"):
                await supervisor.update(with_restart)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while loop.time() < deadline:  # each worker applies it as soon as its loop reads the frame
                before = len(shadow.seen)
                assert await get_each_on_its_own_connection(url, 20) == [200] * 20
                if len(shadow.seen) == before:
                    break
            assert len(shadow.seen) == before  # 20 requests over both workers, none mirrored
    finally:
        stop.set()
        assert await asyncio.wait_for(running, 30) == 0


async def test_the_supervisor_renders_metrics_once_for_concurrent_scrapes(primary: Backend) -> None:
    """The supervisor's /metrics (the workers' files, summed) is one render for eight concurrent scrapes
    within the default interval (identical bytes, exposition() called once); after update() sets
    admin.metrics_min_interval to 0, each scrape renders."""
    from shadowdiff import config as configuration
    from shadowdiff.workers.supervisor import Supervisor

    class CountingSupervisor(Supervisor):
        renders = 0

        def exposition(self) -> bytes:
            self.renders += 1
            return super().exposition()

    raw = two_workers(primary.url, primary.url)
    supervisor = CountingSupervisor(configuration.from_mapping(raw))
    stop = asyncio.Event()
    running = asyncio.ensure_future(supervisor.run(stop))
    try:
        async with aiohttp.ClientSession() as client:
            served = Served(None, 0, int(raw["admin"]["listen"].rsplit(":", 1)[1]))  # type: ignore[arg-type]
            await until_ready(served, client)
            assert await get_each_on_its_own_connection(f"http://{raw['listen']['address']}", 10) == [200] * 10
            assert supervisor.renders == 0  # nothing scraped /metrics yet
            bodies = await scrapes_within_one_interval(served.admin_url, client, 8, 1.0, lambda: supervisor.renders)
            assert len(set(bodies)) == 1
            assert MetricsReader(bodies[0].decode()).value("shadowdiff_requests_total") == 10
            before = supervisor.renders
            await supervisor.update(configuration.from_mapping({**raw, "admin": {**raw["admin"], "metrics_min_interval": 0}}))
            for _ in range(3):
                await scrape(served, client)
            assert supervisor.renders == before + 3
    finally:
        stop.set()
        assert await asyncio.wait_for(running, 30) == 0


@pytest.mark.parametrize("store", ["on", "off"])
async def test_the_supervisor_api_shows_the_sum_of_the_workers_field_statistics(
    primary: Backend, shadow: Backend, tmp_path: Path, store: str
) -> None:
    """With two workers, /api/v1/routes on the supervisor counts every comparison both workers made:
    with the store on, each worker writes to it as an instance of its own (both listed); off, each
    writes its field statistics to the shared directory and the supervisor adds them up."""
    config = f"store: {{enabled: {'true' if store == 'on' else 'false'}}}\n"
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--workers", "2", config=config, tmp_path=tmp_path) as served:
        async with aiohttp.ClientSession() as client:
            await until_ready(served, client)
            assert await get_each_on_its_own_connection(served.url, 40) == [200] * 40
            await settled(served, client, 40)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15  # each worker writes its file every few seconds
            while True:
                async with client.get(served.admin_url + "/api/v1/routes") as response:
                    assert response.status == 200
                    view = await response.json()
                routes = view["routes"]
                counted = sum(sum(route["comparisons"].values()) for route in routes)
                if counted >= 40 or loop.time() > deadline:
                    break
                await asyncio.sleep(0.2)
        assert counted == 40
        if store == "on":
            assert view["range"]["label"] == "all" and len(view["instances"]) == 2
        else:
            assert view["range"]["label"] == "live"
        assert {route["route"] for route in routes} == {"/item/{id}"}
        assert sum(route["comparisons"]["match"] for route in routes) == 40
