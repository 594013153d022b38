"""Fixtures and helpers of the noise tests: the noisy apps on 127.0.0.1, driving a proxy one
request at a time, and reading its admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.backends import serve_app
from tests.conftest import admin_url_of, settle, url_of
from tests.noise.apps import SEEN, noisy_app

ROUTES = ["/stamp/{id}", "/plan/{id}", "/flaky/{id}", "/gone/{id}", "/rare/{id}", "/links/{id}", "/wide/{id}"]


@pytest.fixture
async def apps() -> AsyncIterator[dict[str, Any]]:
    """A primary, a candidate and a secondary (a second instance of the primary's version)."""
    runners, out = [], {}
    for name, candidate in (("primary", False), ("shadow", True), ("secondary", False)):
        app = noisy_app(candidate=candidate)
        runner, url = await serve_app(app)
        runners.append(runner)
        out[name], out[f"{name}_seen"] = url, app[SEEN]
    yield out
    for runner in runners:
        await runner.cleanup()


async def drive(proxy: Any, paths: list[str], *, method: str = "GET", headers: dict[str, str] | None = None) -> None:
    """Send each path through the proxy, one at a time, each one's shadow work finished before the next."""
    async with aiohttp.ClientSession() as client:
        for path in paths:
            async with client.request(method, url_of(proxy) + path, headers=headers) as response:
                assert response.status == 200
                await response.read()
            await settle(proxy)


async def api(proxy: Any, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client:
        async with client.get(admin_url_of(proxy) + path) as response:
            return response.status, await response.json(content_type=None)


async def field(proxy: Any, route: str, path: str) -> dict[str, Any]:
    status, body = await api(proxy, f"/api/v1/fields?route={route}")
    assert status == 200, body
    rows = {(row["part"], row["path"]): row for row in body["fields"]}
    assert ("body", path) in rows, sorted(rows)
    return rows[("body", path)]
