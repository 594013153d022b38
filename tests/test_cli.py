"""The shadowdiff command: help, check-config exit codes, and serve as a real process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from shadowdiff.cli import main
from tests.backends import Backend, free_port
from tests.conftest import serve_until_exit, serving

GOOD = "primary:\n  url: http://127.0.0.1:8000\nshadow:\n  url: http://user:pw@127.0.0.1:8001\n"


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["demo", "--help"], ["check-config", "--help"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--help on the command and each subcommand prints usage and exits 0."""
    assert main(argv) == 0
    assert "usage: shadowdiff" in capsys.readouterr().out


def test_check_config_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file exits 0 and prints the effective config with defaults and masked secrets."""
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sample_rate: 1.0" in out
    assert "pw" not in out


def test_check_config_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid file exits 2 with one line per bad key path on stderr."""
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "mirror:\n  sample_rate: 1.5\n  colour: blue\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "config error: mirror.sample_rate: must be between 0 and 1, got 1.5" in err
    assert any(line.startswith("config error: mirror.colour: unknown key") for line in err)


def test_serve_with_a_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """serve validates flags like file keys: a bad --primary exits 2 naming primary.url."""
    assert main(["serve", "--primary", "not-a-url", "--shadow", "http://127.0.0.1:1"]) == 2
    assert "primary.url" in capsys.readouterr().err


def test_unknown_command_exits_2() -> None:
    """A command that does not exist is a usage error."""
    assert main(["frobnicate"]) == 2


async def test_serve_runs_without_a_file_and_stops_on_sigterm(primary: Backend, shadow: Backend) -> None:
    """`shadowdiff serve --primary URL --shadow URL` proxies, serves /metrics, and exits 0 on SIGTERM."""
    async with serving("--primary", primary.url, "--shadow", shadow.url) as served:
        async with aiohttp.ClientSession() as client:
            async with client.get(served.url + "/hello") as response:
                assert response.status == 200
                assert await response.json() == {"path": "/hello", "query": ""}
            async with client.get(served.admin_url + "/metrics") as response:
                assert "shadowdiff_requests_total" in await response.text()
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), 20) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_serve_exits_1_when_the_port_is_taken(primary: Backend, workers: str) -> None:
    """A listen port already in use is a clear error and exit 1, not a traceback (with workers
    too, and none left behind)."""
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    try:
        code, err = await serve_until_exit(
            "--primary", primary.url, "--shadow", primary.url, "--workers", workers,
            "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
    finally:
        taken.close()
    assert code == 1
    assert b"Traceback" not in err and b"address" in err.lower()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"primary: {url: 'http://[::1'}\nshadow: {url: 'http://b:1'}\n", "primary.url: not a valid URL"),
        (b"primary:\n  url: http://caf\xe9:1\n", "not UTF-8 text"),
    ],
)
def test_check_config_never_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str) -> None:
    """A malformed URL or a file that is not UTF-8 is exit 2 with a message, not a traceback."""
    path = tmp_path / "odd.yaml"
    path.write_bytes(content)
    assert main(["check-config", str(path)]) == 2
    assert expected in capsys.readouterr().err


async def test_serve_keeps_serving_when_nobody_reads_its_stdout(primary: Backend) -> None:
    """With a stdout pipe nobody drains and a mismatch log line per request, requests keep being answered."""
    mismatching = await Backend("other").start()  # /whoami differs between the two: one log line each
    try:
        async with serving("--primary", primary.url, "--shadow", mismatching.url) as served:
            # Started; from now on nobody reads its stdout.
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
                for _ in range(600):  # ~180 KB of mismatch lines: far past a 64 KB pipe buffer
                    async with client.get(served.url + "/whoami") as response:
                        assert response.status == 200
    finally:
        await mismatching.stop()


async def test_access_log_with_a_stuck_stdout_does_not_stall(primary: Backend, tmp_path: Path) -> None:
    """With the access log on (a library logger) and nobody reading stdout, requests keep being answered."""
    config = f"primary: {{url: '{primary.url}'}}\nmirror: {{enabled: false}}\nlogging: {{access_log: true}}\n"
    async with serving(config=config, tmp_path=tmp_path) as served:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as client:
            for _ in range(1500):  # ~300 KB of access lines: far past a 64 KB pipe buffer
                async with client.get(served.url + "/a-long-path-to-make-longer-access-lines") as response:
                    assert response.status == 200


def test_check_config_refuses_a_pattern_re2_cannot_run(tmp_path: Path) -> None:
    """A backreference in a mask rule is exit 2 naming compare.rules[1].pattern with a hint, and RE2
    itself writes nothing to stderr (its own error logging is off): one line per problem."""
    path = tmp_path / "re2.yaml"
    path.write_text(
        GOOD
        + "compare:\n  rules:\n"
        + "    - {kind: mask, pattern: '[0-9]+', reason: ids}\n"
        + "    - {kind: mask, pattern: '(\\w+)-\\1', reason: repeated words}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config error: compare.rules[1].pattern: RE2 cannot run this pattern (invalid escape sequence: \\1); "
        "RE2 runs in linear time and so has no backreferences (\\1), lookahead or lookbehind ((?=, (?!, (?<=, "
        "(?<!), atomic or possessive groups, or \\Z (use \\z): rewrite the pattern without them (a mask usually "
        "needs none: match the volatile part itself)"
    ]
