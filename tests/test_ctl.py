"""`shadowdiff ctl` as an operator runs it: a real process against a real `shadowdiff serve`.

Every run is checked for the tokens it was given: none may appear in what ctl prints.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from shadowdiff.cli import main
from shadowdiff.ctl import TOKEN_ENV
from tests.backends import Backend, free_port
from tests.conftest import Served, serving
from tests.metrics_text import MetricsReader

OPS = "ops-5d1c9e7a3b2f8046e1d9"  # the operator's token, from a file
EYES = "eyes-8b3e0f6a2c7d91e4b5a0"  # the viewer's, from $EYES_TOKEN
WRONG = "nobody-0a1b2c3d4e5f60718293"  # no one's
SECRETS = (OPS, EYES, WRONG)
SERVE_ENV = {"EYES_TOKEN": EYES}
UNREACHABLE = "is `shadowdiff serve` running, and is admin.listen right?"


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def ctl(*args: str, token: str | None = None) -> Ran:
    """`python -m shadowdiff ctl ARGS`, with $SHADOWDIFF_TOKEN set to `token` (unset without one)."""
    env = {name: value for name, value in os.environ.items() if name != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowdiff", "ctl", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    ran = Ran(process.returncode, out.decode(), err.decode())
    for secret in SECRETS:
        assert secret not in ran.out + ran.err
    return ran


def ops_file(tmp_path: Path) -> str:
    path = tmp_path / "ops.token"
    path.write_text(f"  {OPS}\n")  # whitespace around it is not part of it
    return str(path)


def proxy_yaml(tmp_path: Path, primary: Backend, shadow: Backend, *, admin_listen: int | None = None, mirror: str = "") -> str:
    """A config with an operator token (from a file) and a viewer token (from $EYES_TOKEN)."""
    listen = f"  listen: '127.0.0.1:{admin_listen}'\n" if admin_listen else ""
    return (
        f"primary: {{url: '{primary.url}'}}\n"
        f"shadow: {{url: '{shadow.url}'}}\n"
        f"mirror: {{{mirror}}}\n"
        "store: {enabled: false}\n"
        "admin:\n"
        f"{listen}"
        "  metrics_min_interval: 0\n"
        "  tokens:\n"
        f"    - {{name: ops, role: operator, token_file: '{ops_file(tmp_path)}'}}\n"
        "    - {name: eyes, role: viewer, token_env: EYES_TOKEN}\n"
    )


def at(served: Served) -> tuple[str, str]:
    return ("--admin", f"127.0.0.1:{served.admin_port}")


async def controls(served: Served) -> dict[str, Any]:
    """The proxy's own word on its live settings (GET /api/v1/controls)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {OPS}"}) as client:
        async with client.get(served.admin_url + "/api/v1/controls") as response:
            assert response.status == 200
            return await response.json()


async def scrape(served: Served) -> MetricsReader:
    async with aiohttp.ClientSession() as client:
        async with client.get(served.admin_url + "/metrics") as response:
            return MetricsReader(await response.text())


async def traffic(served: Served, count: int) -> None:
    """`count` requests through the proxy, each on a fresh connection, each answered 200."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
        for n in range(count):
            async with client.get(f"{served.url}/orders/{n}") as response:
                assert response.status == 200
                await response.read()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def counted(served: Served, name: str, expected: float, **labels: str) -> None:
    """Wait until the metric `name` (summed over `labels`) reaches `expected`; fail if it passes it."""

    async def reached() -> bool:
        value = (await scrape(served)).value(name, **labels)
        assert value <= expected, f"{name}{labels} is {value}, more than {expected}"
        return value == expected

    await eventually(reached)


def shown(out: str, label: str) -> str:
    """The value on status's line `label:` (its first word)."""
    line = next(line for line in out.splitlines() if line.startswith(label + ":"))
    return line.split(":", 1)[1].split()[0]


async def test_status_pause_and_resume(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """status prints the live state and the restart note (exit 0); pause exits 0, the proxy says paused,
    clients are still answered 200 while each request is a `paused` skip and none reaches the shadow;
    status shows the live setting against the file's; resume exits 0 and mirrors again."""
    async with serving(config=proxy_yaml(tmp_path, primary, shadow), tmp_path=tmp_path, env=SERVE_ENV) as served:
        token = ("--token-file", ops_file(tmp_path))
        status = await ctl(*at(served), *token, "status")
        assert status.code == 0, status.err
        assert (shown(status.out, "mirroring"), shown(status.out, "sample rate"), shown(status.out, "re-ask rate")) == (
            "on", "1.0", "0.0",
        )  # fmt: skip
        assert "ops (operator): may change these" in status.out
        assert "lost on restart" in status.out

        paused = await ctl(*at(served), *token, "pause")
        assert paused.code == 0, paused.err
        assert "mirroring paused (was on)" in paused.out and "lost on restart" in paused.out
        assert (await controls(served))["mirroring"] == "paused"
        await traffic(served, 10)
        await counted(served, "shadowdiff_mirror_skipped_total", 10, reason="paused")
        assert (await scrape(served)).value("shadowdiff_mirror_enabled") == 0
        assert shadow.seen == []

        status = await ctl(*at(served), *token, "status")
        assert "paused  (live setting; the file says on)" in status.out

        resumed = await ctl(*at(served), "resume", token=OPS)  # the token from $SHADOWDIFF_TOKEN
        assert resumed.code == 0, resumed.err
        assert "mirroring on (was paused)" in resumed.out
        await traffic(served, 5)
        await counted(served, "shadowdiff_mirrored_total", 5)
        assert len(shadow.seen) == 5


async def test_sample_rate(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """sample-rate 0.5 exits 0 saying the old and new rate, and shows in status (as a live setting),
    in --json status, in /api/v1/controls and in shadowdiff_mirror_sample_rate."""
    async with serving(config=proxy_yaml(tmp_path, primary, shadow), tmp_path=tmp_path, env=SERVE_ENV) as served:
        changed = await ctl(*at(served), "sample-rate", "0.5", token=OPS)
        assert changed.code == 0, changed.err
        assert "sample rate 0.5 (was 1.0)" in changed.out
        status, as_json = await asyncio.gather(
            ctl(*at(served), "status", token=EYES), ctl(*at(served), "--json", "status", token=EYES)
        )
        assert shown(status.out, "sample rate") == "0.5" and "the file says 1.0" in status.out
        state = await controls(served)
        assert state["sample_rate"] == 0.5 and state["overridden"] == ["sample_rate"]
        assert as_json.code == 0 and orjson.loads(as_json.out) == state
        assert (await scrape(served)).value("shadowdiff_mirror_sample_rate") == 0.5


async def test_reload_good_and_bad_files(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """With --config (admin.listen read from the proxy's own file): a good edit reloads (exit 0, the
    changed key listed, the proxy runs with it); a bad file exits 1 naming its key path and a restart key
    exits 1 naming it, and neither changes anything."""
    async with serving(config=proxy_yaml(tmp_path, primary, shadow), tmp_path=tmp_path, env=SERVE_ENV) as served:
        path = tmp_path / "serve.yaml"  # the file serving() wrote and the proxy reloads
        file = ("--config", str(path))

        # admin.listen as the proxy's flag has it, so ctl can find it: the proxy's config does not change
        path.write_text(proxy_yaml(tmp_path, primary, shadow, admin_listen=served.admin_port))
        same = await ctl(*file, "reload", token=OPS)
        assert (same.code, same.out.strip()) == (0, "reloaded: the file is as it was, nothing changed"), same.err

        path.write_text(proxy_yaml(tmp_path, primary, shadow, admin_listen=served.admin_port, mirror="sample_rate: 0.25"))
        good = await ctl(*file, "reload", token=OPS)
        assert (good.code, good.out.strip()) == (0, "reloaded: mirror.sample_rate"), good.err
        state = await controls(served)
        assert (state["sample_rate"], state["config"]["sample_rate"], state["overridden"]) == (0.25, 0.25, [])

        path.write_text(proxy_yaml(tmp_path, primary, shadow, admin_listen=served.admin_port, mirror="sample_rate: 3"))
        bad = await ctl(*file, "reload", token=OPS)
        assert bad.code == 1
        assert "reload refused: the config file is not valid: nothing changed" in bad.err
        assert "mirror.sample_rate: must be between 0 and 1" in bad.err

        path.write_text(
            proxy_yaml(tmp_path, primary, shadow, admin_listen=served.admin_port, mirror="sample_rate: 0.1")
            + "listen: {workers: 3}\n"
        )
        restart = await ctl(*file, "reload", token=OPS)
        assert restart.code == 1
        assert "needs a restart: listen.workers" in restart.err
        assert (await controls(served))["sample_rate"] == 0.25
        assert (await scrape(served)).value("shadowdiff_mirror_sample_rate") == 0.25


async def test_tokens_and_roles(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """No token: 401 told with how to give one, exit 1; an unknown token: exit 1; the viewer's: status
    works, pause is refused (403, an operator's token is needed), exit 1, nothing changes; the
    operator's, from --token-file and from $SHADOWDIFF_TOKEN: pause and resume work, exit 0."""
    async with serving(config=proxy_yaml(tmp_path, primary, shadow), tmp_path=tmp_path, env=SERVE_ENV) as served:
        address = f"127.0.0.1:{served.admin_port}"
        anonymous, unknown, viewer, viewer_pause = await asyncio.gather(
            ctl(*at(served), "status"),
            ctl(*at(served), "status", token=WRONG),
            ctl(*at(served), "status", token=EYES),
            ctl(*at(served), "pause", token=EYES),
        )
        assert anonymous.code == 1
        assert anonymous.err.startswith(f"shadowdiff ctl: the admin listener at {address} refused: reading needs a token")
        assert anonymous.err.rstrip().endswith("give a token with --token-file FILE or SHADOWDIFF_TOKEN")
        assert unknown.code == 1 and "that token is not one of admin.tokens" in unknown.err
        assert viewer.code == 0 and shown(viewer.out, "mirroring") == "on"
        assert "eyes (viewer): may read, not change" in viewer.out
        assert viewer_pause.code == 1
        assert "the token 'eyes' is a viewer's" in viewer_pause.err and "(an operator's token is needed)" in viewer_pause.err
        assert (await controls(served))["mirroring"] == "on"

        from_file = await ctl(*at(served), "--token-file", ops_file(tmp_path), "pause")
        assert from_file.code == 0, from_file.err
        assert (await controls(served))["mirroring"] == "paused"
        from_env = await ctl(*at(served), "resume", token=OPS)
        assert from_env.code == 0, from_env.err
        assert (await controls(served))["mirroring"] == "on"


async def test_changes_are_refused_without_an_operator_token(primary: Backend, shadow: Backend) -> None:
    """With no admin.tokens at all, status reads (exit 0) but pause is refused: no operator token is
    configured (403), exit 1."""
    async with serving("--primary", primary.url, "--shadow", shadow.url) as served:
        status, pause = await asyncio.gather(ctl(*at(served), "status"), ctl(*at(served), "pause"))
        assert status.code == 0 and "no token: may read, not change" in status.out
        assert pause.code == 1
        assert "no operator token is configured" in pause.err and "(an operator's token is needed)" in pause.err


async def test_an_unreachable_admin_listener(tmp_path: Path) -> None:
    """Nothing listening at --admin, or at the admin.listen --config names: exit 1 with the address and
    what to check."""
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"admin: {{listen: '127.0.0.1:{port}'}}\n")
    by_flag, by_file = await asyncio.gather(
        ctl("--admin", f"127.0.0.1:{port}", "pause", token=OPS), ctl("--config", str(config), "status")
    )
    for ran in (by_flag, by_file):
        assert ran.code == 1
        assert ran.err.strip() == (
            f"shadowdiff ctl: cannot reach the admin listener at 127.0.0.1:{port}: connection refused; {UNREACHABLE}"
        )


async def test_config_bad_elsewhere_still_names_a_guarded_admin_address(tmp_path: Path) -> None:
    """A file whose admin section listens on 0.0.0.0 with tokens, bad in another key: ctl finds the
    address from the admin section (reached on loopback) instead of refusing it as an open one."""
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"admin: {{listen: '0.0.0.0:{port}', tokens: [{{name: ops, role: operator, token_env: OPS_TOKEN}}]}}\n"
        "mirror: {sample_rate: 7}\n"
    )
    ran = await ctl("--config", str(config), "status")
    assert ran.code == 1 and f"cannot reach the admin listener at 127.0.0.1:{port}" in ran.err, ran.err


async def test_bad_usage_as_a_process() -> None:
    """A sample rate outside 0..1 is bad usage: exit 2 with the rule, before anything is sent."""
    ran = await ctl("--admin", f"127.0.0.1:{free_port()}", "sample-rate", "2")
    assert ran.code == 2
    assert "argument RATE: must be a number from 0 to 1" in ran.err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sample-rate", "1.5"], "must be a number from 0 to 1"),
        (["sample-rate", "nan"], "must be a number from 0 to 1"),
        (["sample-rate", "-0.1"], "must be a number from 0 to 1"),
        (["sample-rate"], "the following arguments are required: RATE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: ACTION"),
        (["--token-file", "/nonexistent/ops.token", "status"], "cannot read the token file /nonexistent/ops.token"),
        (["--admin", "nowhere", "status"], "must be HOST:PORT"),
        (["--admin", "127.0.0.1:1", "--config", "c.yaml", "status"], "give --admin or --config, not both"),
        (["--config", "/nonexistent/c.yaml", "status"], "/nonexistent/c.yaml: cannot read"),
    ],
)
def test_bad_usage_exits_2(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad usage (a rate outside 0..1, a missing or unknown action, an unreadable token file, a bad
    address, --admin with --config, an unreadable config) exits 2 saying what is wrong."""
    assert main(["ctl", *argv]) == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", "   \n", "two words-0123456789\n", "caf\u00e9-0123456789abcdef"])
def test_a_token_file_that_cannot_be_sent_is_bad_usage(content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty token file, or one whose token a header cannot carry, exits 2 without printing the token."""
    path = tmp_path / "token"
    path.write_text(content)
    assert main(["ctl", "--admin", "127.0.0.1:1", "--token-file", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert "token file" in err or "visible ASCII" in err
    assert content.strip() == "" or content.strip() not in err


def test_options_after_the_action(capsys: pytest.CaptureFixture[str]) -> None:
    """Options may follow the action (`ctl pause --admin ...`), and do not undo those before it."""
    port = free_port()
    assert main(["ctl", "--admin", f"127.0.0.1:{port}", "status", "--json"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["ctl", "status", "--admin", f"127.0.0.1:{port}"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_ctl_help_lists_the_actions(capsys: pytest.CaptureFixture[str]) -> None:
    """`shadowdiff ctl --help` lists every action with its help, and exits 0."""
    assert main(["ctl", "--help"]) == 0
    out = capsys.readouterr().out
    for action in ("status", "pause", "resume", "sample-rate", "reload"):
        assert f"    {action} " in out


async def test_a_pause_reaches_every_worker(primary: Backend, shadow: Backend, tmp_path: Path) -> None:
    """With --workers 2, every request on a fresh connection after pause returns is a `paused` skip
    (whichever worker took it), and a sample rate set next shows in every worker's gauge within a second."""
    config = proxy_yaml(tmp_path, primary, shadow)
    async with serving("--workers", "2", config=config, tmp_path=tmp_path, env=SERVE_ENV) as served:
        await traffic(served, 10)
        await counted(served, "shadowdiff_mirrored_total", 10)
        paused = await ctl(*at(served), "pause", token=OPS)
        assert paused.code == 0, paused.err
        await traffic(served, 30)  # fresh connections: the kernel spreads them over both workers
        await counted(served, "shadowdiff_mirror_skipped_total", 30, reason="paused")
        assert (await scrape(served)).value("shadowdiff_mirrored_total") == 10

        rate = await ctl(*at(served), "sample-rate", "0.5", token=OPS)
        assert rate.code == 0, rate.err
        # the gauge is the largest of the workers': 0.5 once both have it
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def everywhere() -> bool:
            return (await scrape(served)).value("shadowdiff_mirror_sample_rate") == 0.5

        await eventually(everywhere, timeout=1.0)
        assert loop.time() - started < 1.0
