"""The admin API's changes against a real proxy: the kill switch under load, the live sample rate,
reload (API and SIGHUP) with good and bad files, and an audit line for every change."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.backends import Backend
from tests.conftest import StartProxy, admin_url_of, metrics, serving, settle, until, url_of
from tests.metrics_text import MetricsReader


async def post(url: str, body: Any, token: str | None = "OPERATOR") -> tuple[int, Any]:
    token = TOKEN if token == "OPERATOR" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as client:
        async with client.post(url, data=orjson.dumps(body) if body is not None else b"", headers=headers) as response:
            return response.status, await response.json(content_type=None)


TOKEN = "op-7f3a9c2e5b8d1f4a6c0e"


def operator(tmp_path: Path) -> dict[str, Any]:
    """The admin section with one operator token (TOKEN, from a file): changes need one."""
    path = tmp_path / "operator.token"
    path.write_text(TOKEN + "\n")
    return {"tokens": [{"name": "ops", "role": "operator", "token_file": str(path)}]}


def operator_yaml(tmp_path: Path) -> str:
    token = operator(tmp_path)["tokens"][0]
    return f"admin: {{tokens: [{{name: ops, role: operator, token_file: '{token['token_file']}'}}]}}\n"


def audits(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines() if '"event":"audit"' in line]


async def test_pause_under_load_costs_clients_nothing_and_resume_restores_mirroring(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """While clients keep sending, a pause answers at once, every request is answered 200, new copies
    are skipped as `paused` (and none reach the shadow), the gauge says 0; resume mirrors again."""
    proxy = await start_proxy(primary.url, shadow.url, admin=operator(tmp_path))
    admin = admin_url_of(proxy)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load() -> None:
        async with aiohttp.ClientSession() as client:
            while not stop.is_set():
                async with client.get(url_of(proxy) + "/load") as response:
                    await response.read()
                    statuses.append(response.status)

    clients = [asyncio.create_task(load()) for _ in range(4)]
    try:
        await until(lambda: len(statuses) >= 50)
        status, body = await post(admin + "/api/v1/controls", {"mirroring": "paused"})
        assert status == 200 and body["mirroring"] == "paused" and body["before"]["mirroring"] == "on"
        paused_at = len(statuses)
        await settle(proxy)
        seen_by_shadow = len(shadow.seen)
        await until(lambda: len(statuses) >= paused_at + 100)
        await settle(proxy)
        assert len(shadow.seen) == seen_by_shadow  # nothing mirrored while paused
        m = metrics(proxy)
        assert m.value("shadowdiff_mirror_skipped_total", reason="paused") >= 100
        assert m.value("shadowdiff_mirror_enabled") == 0
        status, body = await post(admin + "/api/v1/controls", {"mirroring": "on"})
        assert status == 200 and body["mirroring"] == "on"
        await until(lambda: len(shadow.seen) > seen_by_shadow + 10)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert set(statuses) == {200}
    assert metrics(proxy).value("shadowdiff_mirror_enabled") == 1
    lines = audits(capsys.readouterr().out)
    assert [(line["result"], line["after"]["mirroring"]) for line in lines] == [("accepted", "paused"), ("accepted", "on")]
    assert lines[0]["before"]["mirroring"] == "on" and lines[0]["source"] == "127.0.0.1"


async def test_a_live_sample_rate_shows_in_the_counters_at_once(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, tmp_path: Path
) -> None:
    """sample_rate 0 skips every next request as sampled_out and the gauge says 0; 1 mirrors them all."""
    proxy = await start_proxy(primary.url, shadow.url, admin=operator(tmp_path))
    admin = admin_url_of(proxy)
    status, body = await post(admin + "/api/v1/controls", {"sample_rate": 0})
    assert status == 200 and body["sample_rate"] == 0.0 and body["overridden"] == ["sample_rate"]
    async with aiohttp.ClientSession() as client:
        for _ in range(20):
            async with client.get(url_of(proxy) + "/s") as response:
                assert response.status == 200
    m = metrics(proxy)
    assert m.value("shadowdiff_mirror_skipped_total", reason="sampled_out") == 20
    assert m.value("shadowdiff_mirror_sample_rate") == 0
    await post(admin + "/api/v1/controls", {"sample_rate": 1})
    async with aiohttp.ClientSession() as client:
        async with client.get(url_of(proxy) + "/s") as response:
            assert response.status == 200
    await settle(proxy)
    assert metrics(proxy).value("shadowdiff_mirrored_total", route="/s") == 1


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"mirroring": "off"}, '"on" or "paused"'),
        ({"sample_rate": 1.5}, "from 0 to 1"),
        ({"sample_rate": True}, "from 0 to 1"),
        ({"listen": "0.0.0.0:80"}, "unknown setting"),
        ({}, "JSON object"),
        ([], "JSON object"),
    ],
)
async def test_a_bad_change_is_a_400_that_changes_nothing_and_is_audited(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    body: Any, said: str,
) -> None:
    """A change the API cannot make answers 400 saying what to send, leaves the settings as they were,
    and writes a refused audit line."""
    proxy = await start_proxy(primary.url, shadow.url, admin=operator(tmp_path))
    status, answer = await post(admin_url_of(proxy) + "/api/v1/controls", body)
    assert status == 400 and said in answer["error"]
    assert proxy.controls.state()["overridden"] == [] and proxy.config.mirror.enabled
    [line] = audits(capsys.readouterr().out)
    assert line["result"].startswith("refused")


def _config(tmp_path: Path, sample_rate: float, extra: str = "") -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(f"mirror: {{sample_rate: {sample_rate}}}\n{operator_yaml(tmp_path)}{extra}")
    return path


async def test_reload_takes_a_good_file_and_refuses_a_bad_one_whole(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """POST /api/v1/reload applies an edited file (the changed keys named) keeping a live pause; a bad
    file is a 400 naming the key and changes nothing; a file changing listen.workers is a 409 naming it."""
    path = _config(tmp_path, 1.0)
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--config", str(path)) as served:
        controls = served.admin_url + "/api/v1/controls"
        await post(controls, {"mirroring": "paused"})
        _config(tmp_path, 0.25)
        status, body = await post(served.admin_url + "/api/v1/reload", None)
        assert (status, body) == (200, {"reloaded": True, "changed": ["mirror.sample_rate"]})
        async with aiohttp.ClientSession() as client, client.get(controls) as response:
            state = await response.json()
        assert (state["sample_rate"], state["mirroring"], state["config"]["sample_rate"]) == (0.25, "paused", 0.25)

        _config(tmp_path, 7)
        status, body = await post(served.admin_url + "/api/v1/reload", None)
        assert status == 400 and any(p.startswith("mirror.sample_rate:") for p in body["problems"])
        _config(tmp_path, 0.5, "listen: {workers: 3}\n")
        status, body = await post(served.admin_url + "/api/v1/reload", None)
        assert status == 409 and body["keys"] == ["listen.workers"]
        async with aiohttp.ClientSession() as client, client.get(controls) as response:
            assert (await response.json())["sample_rate"] == 0.25


async def test_sighup_reloads_the_file_and_a_bad_one_is_logged_with_its_key(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """SIGHUP reads the file again: a good edit is live within a second (config_reloaded names it); a
    bad one logs config_reload_refused with the key path and changes nothing."""
    path = _config(tmp_path, 1.0)
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--config", str(path)) as served:
        controls = served.admin_url + "/api/v1/controls"

        async def rate() -> float:
            async with aiohttp.ClientSession() as client, client.get(controls) as response:
                return (await response.json())["sample_rate"]

        _config(tmp_path, 0.5)
        os.kill(served.process.pid, signal.SIGHUP)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while await rate() != 0.5:
            assert loop.time() < deadline, "the reload took more than a second"
            await asyncio.sleep(0.05)
        _config(tmp_path, -1)
        os.kill(served.process.pid, signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert await rate() == 0.5
        served.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(served.process.wait(), 20)
    out = served.out.decode()
    assert '"event":"config_reloaded","changed":["mirror.sample_rate"]' in out
    refused = [orjson.loads(line) for line in out.splitlines() if '"config_reload_refused"' in line]
    assert len(refused) == 1 and refused[0]["problems"][0].startswith("mirror.sample_rate:")
    assert [line["result"].split(":")[0] for line in audits(out)] == ["accepted", "refused"]


async def test_with_two_workers_a_pause_reaches_both_within_a_second(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """--workers 2: after the supervisor's answer to a pause, requests on fresh connections (spread
    over both workers) are all skipped as paused within a second, and resume mirrors again."""
    config = operator_yaml(tmp_path)
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--workers", "2", config=config, tmp_path=tmp_path) as served:
        status, body = await post(served.admin_url + "/api/v1/controls", {"mirroring": "paused"})
        assert status == 200 and body["mirroring"] == "paused"
        await asyncio.sleep(1.0)
        before = len(shadow.seen)
        for _ in range(20):
            async with aiohttp.ClientSession() as client, client.get(served.url + "/w") as response:
                assert response.status == 200
        await asyncio.sleep(0.5)
        assert len(shadow.seen) == before
        await post(served.admin_url + "/api/v1/controls", {"mirroring": "on"})
        await asyncio.sleep(1.0)
        for _ in range(20):
            async with aiohttp.ClientSession() as client, client.get(served.url + "/w") as response:
                assert response.status == 200
        await until(lambda: len(shadow.seen) >= before + 20, timeout=10)


async def test_a_live_setting_goes_back_to_the_files_and_resume_cannot_override_the_file(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, tmp_path: Path
) -> None:
    """A rate of null, and "on" after a pause, go back to the file's values (nothing overridden); with
    mirror.enabled false in the file, "on" is a 400 saying to edit the file."""
    proxy = await start_proxy(primary.url, shadow.url, admin=operator(tmp_path), mirror={"sample_rate": 0.5})
    url = admin_url_of(proxy) + "/api/v1/controls"
    await post(url, {"sample_rate": 0.1, "mirroring": "paused"})
    status, body = await post(url, {"sample_rate": None, "mirroring": "on"})
    assert status == 200 and (body["sample_rate"], body["mirroring"], body["overridden"]) == (0.5, "on", [])
    off = await start_proxy(primary.url, shadow.url, admin=operator(tmp_path), mirror={"enabled": False})
    status, body = await post(admin_url_of(off) + "/api/v1/controls", {"mirroring": "on"})
    assert status == 400 and "mirror.enabled: false" in body["error"]


async def test_a_reloaded_rule_decides_the_next_comparison(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """A request that mismatches ($.backend differs) is `ignored` once a reload brings a rule for it:
    the next comparison after the reload's answer uses the new rules, with no restart."""
    path = tmp_path / "rules.yaml"
    path.write_text(operator_yaml(tmp_path))
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--config", str(path)) as served:

        async def outcomes() -> dict[str, float]:
            async with aiohttp.ClientSession() as client, client.get(served.admin_url + "/metrics") as response:
                text = await response.text()
            return {o: MetricsReader(text).value("shadowdiff_comparisons_total", route="/whoami", outcome=o)
                    for o in ("mismatch", "ignored")}  # fmt: skip

        async def whoami() -> None:
            async with aiohttp.ClientSession() as client, client.get(served.url + "/whoami") as response:
                assert response.status == 200

        async def counted(expected: dict[str, float]) -> None:  # comparisons are published in the background
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while (found := await outcomes()) != expected:
                assert loop.time() < deadline, found
                await asyncio.sleep(0.1)

        await whoami()
        await counted({"mismatch": 1, "ignored": 0})
        path.write_text(operator_yaml(tmp_path) + 'compare: {rules: [{kind: ignore, path: "$.backend", reason: "renamed"}]}\n')
        status, body = await post(served.admin_url + "/api/v1/reload", None)
        assert status == 200 and body["changed"] == ["compare.rules"]
        await whoami()
        await counted({"mismatch": 1, "ignored": 1})


async def test_a_reload_drops_no_connection_and_loses_no_request_in_flight(shadow: Backend, tmp_path: Path) -> None:
    """A request at a slow primary while the file is reloaded is answered 200, and the client's
    keep-alive connection carries the next request after the swap."""
    slow = await Backend("slow", delay=1.0).start()
    path = _config(tmp_path, 1.0)
    try:
        async with serving("--primary", slow.url, "--shadow", shadow.url, "--config", str(path)) as served:
            opened: list[object] = []
            trace = aiohttp.TraceConfig()

            async def on_open(session: object, context: object, params: object) -> None:
                opened.append(params)

            trace.on_connection_create_end.append(on_open)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), trace_configs=[trace]) as client:
                in_flight = asyncio.ensure_future(client.get(served.url + "/slow"))
                await until(lambda: slow.seen)
                _config(tmp_path, 0.5)
                status, body = await post(served.admin_url + "/api/v1/reload", None)
                assert status == 200 and body["changed"] == ["mirror.sample_rate"]
                response = await in_flight
                assert response.status == 200
                await response.read()
                async with client.get(served.url + "/again") as again:
                    assert again.status == 200
            assert len(opened) == 1  # one connection carried both requests, across the swap
    finally:
        await slow.stop()


async def test_changes_at_once_apply_one_after_the_other(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """With --workers 2, a pause, a sample rate and a reload sent together all hold afterwards: the
    pause is not undone by the others (each builds on what the last left); SIGHUP without trouble too."""
    path = _config(tmp_path, 1.0)
    async with serving("--primary", primary.url, "--shadow", shadow.url, "--workers", "2", "--config", str(path)) as served:
        controls = served.admin_url + "/api/v1/controls"
        answers = await asyncio.gather(
            post(controls, {"mirroring": "paused"}), post(controls, {"sample_rate": 0.5}),
            post(served.admin_url + "/api/v1/reload", None),
        )  # fmt: skip
        assert [status for status, _ in answers] == [200, 200, 200]
        os.kill(served.process.pid, signal.SIGHUP)
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as client, client.get(controls) as response:
            state = await response.json()
        assert (state["mirroring"], state["sample_rate"]) == ("paused", 0.5)
        before = len(shadow.seen)
        for _ in range(10):
            async with aiohttp.ClientSession() as client, client.get(served.url + "/c") as response:
                assert response.status == 200
        await asyncio.sleep(0.3)
        assert len(shadow.seen) == before and served.process.returncode is None


async def test_sighup_without_a_config_file_is_refused_not_fatal(primary: Backend, shadow: Backend) -> None:
    """A proxy started with flags alone keeps serving through a SIGHUP, and says why it reloaded nothing."""
    async with serving("--primary", primary.url, "--shadow", shadow.url) as served:
        os.kill(served.process.pid, signal.SIGHUP)
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as client, client.get(served.url + "/x") as response:
            assert response.status == 200
        assert served.process.returncode is None
        served.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(served.process.wait(), 20)
    assert b"config_reload_refused" in served.out and b"without --config" in served.out
