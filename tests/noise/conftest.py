"""Fixtures and helpers of the noise tests: the noisy apps on 127.0.0.1, and one field of the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.backends import serve_app
from tests.conftest import api
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


async def field(proxy: Any, route: str, path: str) -> dict[str, Any]:
    status, body = await api(proxy, f"/api/v1/fields?route={route}")
    assert status == 200, body
    rows = {(row["part"], row["path"]): row for row in body["fields"]}
    assert ("body", path) in rows, sorted(rows)
    return rows[("body", path)]
