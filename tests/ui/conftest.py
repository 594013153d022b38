"""Fixtures of the UI tests: one proxy in front of the demo's backends (and a hostile route),
driven once for the whole package with a store of its own; proxies with admin tokens; a
headless Chromium; where the screenshots go; reading a page over HTTP; signing in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDictProxy
from playwright.async_api import Browser, async_playwright

from shadowdiff import access
from shadowdiff import config as configuration
from shadowdiff.demo import DEMO_NOISE, DEMO_ROUTES, DEMO_RULES
from shadowdiff.service import ShadowDiff
from tests.backends import serve_app
from tests.conftest import admin_url_of, proxy_config, settle, url_of
from tests.tokens import admin_tokens
from tests.ui.apps import backend, demo_paths, send

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@dataclass
class Demo:
    """The driven proxy: its admin listener's URL and the backends' URLs (for more proxies)."""

    service: ShadowDiff
    admin: str
    primary: str
    shadow: str


def demo_config(primary: str, shadow: str, **sections: object) -> configuration.Config:
    """The demo's config (its routes, tolerance rule and re-asks) on loopback ports."""
    return proxy_config(
        primary, shadow, routes=DEMO_ROUTES, compare={"rules": DEMO_RULES}, noise=DEMO_NOISE, logging={"level": "error"}, **sections
    )


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """A proxy with the store on (a file of its own: the per-test state directory comes too late for
    a package fixture) that has compared the demo traffic, every shadow finished and the store flushed."""
    runners: list[web.AppRunner] = []
    urls = []
    for candidate in (False, True):
        runner, url = await serve_app(backend(candidate))
        runners.append(runner)
        urls.append(url)
    store = tmp_path_factory.mktemp("ui-store") / "store.db"
    service = ShadowDiff(demo_config(*urls, store={"url": f"sqlite:///{store}"}))
    await service.start()
    try:
        await send(url_of(service), demo_paths())
        await settle(service)
        await service.flush_store()
        yield Demo(service, admin_url_of(service), *urls)
    finally:
        await service.stop()
        for runner in runners:
            await runner.cleanup()


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the views' screenshots go: $SHADOWDIFF_TEST_OUTPUT, else .test-output/screenshots/."""
    given = os.environ.get("SHADOWDIFF_TEST_OUTPUT")
    folder = Path(given) if given else PROJECT / ".test-output" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Page:
    status: int
    headers: CIMultiDictProxy[str]
    text: str


async def fetch(url: str, *, session: str | None = None, headers: dict[str, str] | None = None) -> Page:
    """GET `url` (with the browser session `session`, if any): its status, headers and text."""
    cookies = {access.SESSION_COOKIE: session} if session else None
    async with (
        aiohttp.ClientSession(cookies=cookies) as client,
        client.get(url, allow_redirects=False, headers=headers) as response,
    ):
        return Page(response.status, response.headers, await response.text())


async def api(demo: Demo, path: str) -> Any:
    """The admin API's JSON at `path` (a 200 expected)."""
    page = await fetch(demo.admin + path)
    assert page.status == 200, page.text
    return orjson.loads(page.text)


Guarded = Callable[..., Awaitable[ShadowDiff]]


@pytest_asyncio.fixture(loop_scope="package")
async def guarded(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Guarded]:
    """Start proxies in front of the demo's backends, the store off, with admin tokens: both
    (`viewer=True`), the operator's alone (`viewer=False`), or none (`tokens=False`); stopped at teardown."""
    started: list[ShadowDiff] = []

    async def start(*, viewer: bool = True, tokens: bool = True) -> ShadowDiff:
        admin = admin_tokens(tmp_path, monkeypatch, viewer=viewer) if tokens else {}
        service = ShadowDiff(demo_config(demo.primary, demo.shadow, store={"enabled": False}, admin=admin))
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


async def sign_in(admin: str, token: str) -> str:
    """The session id the sign-in form gives `token` (a 303 expected)."""
    async with aiohttp.ClientSession() as client:
        async with client.post(admin + "/ui/sign-in", data={"token": token}, allow_redirects=False) as response:
            assert response.status == 303, await response.text()
            return response.cookies[access.SESSION_COOKIE].value
