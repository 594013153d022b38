"""Shared fixtures: loopback backends and proxies started on ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shadowdiff import log

from shadowdiff import config as configuration
from shadowdiff.service import ShadowDiff
from tests.backends import Backend, RawBackend, free_port, serve_app
from tests.metrics_text import MetricsReader
from tests.store.apps import store_app


@pytest.fixture(autouse=True)
def _own_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test's proxies (and the processes it starts) keep their default store in its own directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture(autouse=True)
def _info_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts at the default log level, whatever ran before it."""
    monkeypatch.setattr(log, "_threshold", logging.INFO)


@pytest.fixture
async def primary() -> AsyncIterator[Backend]:
    backend = await Backend("primary").start()
    yield backend
    await backend.stop()


@pytest.fixture
async def shadow() -> AsyncIterator[Backend]:
    backend = await Backend("shadow").start()
    yield backend
    await backend.stop()


@pytest.fixture
async def store_apps() -> AsyncIterator[dict[str, str]]:
    """The store tests' primary and candidate (tests/store/apps.py) on 127.0.0.1: their URLs."""
    runners, urls = [], {}
    for name, candidate in (("primary", False), ("shadow", True)):
        runner, urls[name] = await serve_app(store_app(candidate=candidate))
        runners.append(runner)
    yield urls
    for runner in runners:
        await runner.cleanup()

@pytest.fixture
async def raw_backend() -> AsyncIterator[Callable[..., Awaitable[RawBackend]]]:
    """Start RawBackends answering fixed bytes; stopped at teardown."""
    started: list[RawBackend] = []

    async def start(response: bytes, *, close_after_response: bool = False) -> RawBackend:
        backend = RawBackend(response)
        backend.close_after_answer = close_after_response
        started.append(await backend.start())
        return backend

    yield start
    for backend in started:
        await backend.stop()


def proxy_config(primary_url: str, shadow_url: str | None, **sections: Any) -> configuration.Config:
    """A Config on ephemeral loopback ports; `sections` are merged in as raw YAML would be."""
    raw: dict[str, Any] = {
        "listen": {"address": "127.0.0.1:0"},
        "admin": {"listen": "127.0.0.1:0"},
        "primary": {"url": primary_url},
        "shadow": {"url": shadow_url} if shadow_url else {},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    if not shadow_url:
        raw.setdefault("mirror", {})["enabled"] = False
    return configuration.from_mapping(raw)


StartProxy = Callable[..., Awaitable[ShadowDiff]]


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """Start a ShadowDiff in front of the given URLs; stopped at teardown."""
    started: list[ShadowDiff] = []

    async def start(primary_url: str, shadow_url: str | None = None, **sections: Any) -> ShadowDiff:
        service = ShadowDiff(proxy_config(primary_url, shadow_url, **sections))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


async def connect(service: ShadowDiff) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to the proxy's traffic port."""
    return await asyncio.open_connection(service.address.host, service.address.port)


def url_of(service: ShadowDiff) -> str:
    return f"http://{service.address}"


def admin_url_of(service: ShadowDiff) -> str:
    return f"http://{service.admin_address}"


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing: no decompression, no redirects, no cookies."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield session


@dataclass
class Served:
    """A `shadowdiff serve` process started by `serving()`; out/err are filled in at exit."""

    process: asyncio.subprocess.Process
    port: int
    admin_port: int
    out: bytes = b""
    err: bytes = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@contextlib.asynccontextmanager
async def serving(
    *args: str, config: str | None = None, tmp_path: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[Served]:
    """`shadowdiff serve ARGS` as a real process (uvloop) on free loopback ports, once started.

    `config`, if given, is written to a file under tmp_path and passed as --config;
    --listen and --admin always come from here; `env` adds to the environment. The
    lines up to the started one are kept in `out` too. On exit a process still running is killed, and
    both pipes are drained: an unread full pipe keeps wait() from returning.
    """
    listen, admin = free_port(), free_port()
    argv = [*args, "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"]
    if config is not None:
        assert tmp_path is not None, "a config needs tmp_path"
        path = tmp_path / "serve.yaml"
        path.write_text(config)
        argv += ["--config", str(path)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowdiff", "serve", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    served = Served(process, listen, admin)
    started = b""
    try:
        # With --workers the supervisor's own line may come before a worker's relayed one.
        deadline = asyncio.get_running_loop().time() + 20
        while b'"event":"started"' not in started:
            line = await asyncio.wait_for(process.stdout.readline(), max(0.0, deadline - asyncio.get_running_loop().time()))
            assert line, started  # it exited before starting
            started += line
        yield served
    finally:
        if process.returncode is None:
            process.kill()
        served.out, served.err = await process.communicate()
        served.out = started + served.out


async def serve_until_exit(*args: str, timeout: float = 20.0, command: str = "serve") -> tuple[int, bytes]:
    """`shadowdiff serve ARGS` (or another command) expected to exit on its own: (exit code, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shadowdiff", command, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, err


def memory_bytes(pid: int, key: str = "VmRSS") -> int:
    """A process's memory from /proc/PID/status, in bytes: VmRSS now, VmHWM its peak so far."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":")) * 1024


async def until(condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll `condition()` until it is true; fail if it is not by the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


async def settle(service: ShadowDiff, timeout: float = 10.0) -> None:
    """Wait until the proxy has no shadow work in flight."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while service.mirror.in_flight and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert service.mirror.in_flight == 0, "shadow work did not drain"


async def drive(
    proxy: Any, paths: list[str], *, method: str = "GET", headers: dict[str, str] | None = None, settled: bool = True
) -> float:
    """Send each path through the proxy, one at a time, each answered 200 and (unless `settled` is
    false) its shadow work finished before the next; the seconds the clients waited in all."""
    waited = 0.0
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as client:
        for path in paths:
            started = loop.time()
            async with client.request(method, url_of(proxy) + path, headers=headers) as response:
                assert response.status == 200
                await response.read()
            waited += loop.time() - started
            if settled:
                await settle(proxy)
    return waited


async def api(proxy: Any, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client:
        async with client.get(admin_url_of(proxy) + path) as response:
            return response.status, await response.json(content_type=None)


def metrics(service: ShadowDiff) -> MetricsReader:
    return MetricsReader(service.metrics.exposition().decode())
