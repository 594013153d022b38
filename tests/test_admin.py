"""The admin listener serves /metrics, /healthz and /readyz; the traffic port serves none of them."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.backends import Backend
from tests.conftest import StartProxy, admin_url_of, until, url_of


async def test_admin_endpoints(primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """/metrics exposes every contract metric; /healthz and /readyz answer 200 while serving."""
    proxy = await start_proxy(primary.url, shadow.url)
    async with client.get(url_of(proxy) + "/x") as response:
        await response.read()
    async with client.get(admin_url_of(proxy) + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    for name in (
        "shadowdiff_requests_total",
        "shadowdiff_upstream_duration_seconds",
        "shadowdiff_upstream_responses_total",
        "shadowdiff_upstream_errors_total",
        "shadowdiff_mirrored_total",
        "shadowdiff_mirror_skipped_total",
        "shadowdiff_shadow_in_flight",
        "shadowdiff_comparisons_total",
        "shadowdiff_differences_total",
        "shadowdiff_compare_duration_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    for path in ("/healthz", "/readyz"):
        async with client.get(admin_url_of(proxy) + path) as response:
            assert response.status == 200


async def test_readyz_fails_once_stopping(shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """While stop() lets an in-flight request finish, /readyz answers 503 and that request still completes."""
    slow = await Backend("slow", delay=1.0).start()
    try:
        proxy = await start_proxy(slow.url, shadow.url)
        in_flight = asyncio.ensure_future(client.get(url_of(proxy) + "/x"))
        await until(lambda: slow.seen)  # the request is at the primary, which takes 1 s
        admin = admin_url_of(proxy)
        stopping = asyncio.ensure_future(proxy.stop())
        await until(lambda: not proxy.ready)
        async with client.get(admin + "/readyz") as response:
            assert response.status == 503
        response = await in_flight
        assert response.status == 200
        await response.read()
        response.release()
        await stopping
    finally:
        await slow.stop()


async def test_traffic_port_has_no_admin_paths(primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """/metrics, /healthz and /readyz on the traffic port are the primary's paths, proxied."""
    proxy = await start_proxy(primary.url)
    for path in ("/metrics", "/healthz", "/readyz"):
        async with client.get(url_of(proxy) + path) as response:
            assert await response.json() == {"path": path, "query": ""}
    assert [s.raw_path for s in primary.seen] == ["/metrics", "/healthz", "/readyz"]


def test_admin_binds_loopback_by_default() -> None:
    """Without admin.listen the admin listener is on 127.0.0.1:9901."""
    from shadowdiff import config as configuration

    config = configuration.from_mapping({"primary": {"url": "http://a:1"}, "shadow": {"url": "http://b:2"}})
    assert str(config.admin.listen) == "127.0.0.1:9901"
