"""Path -> bounded route: configured templates first, then automatic id collapse with a cap."""

from __future__ import annotations

import asyncio
import random
import string

import aiohttp
import pytest

from shadowdiff.routing import CACHED_PATHS, OTHER, RouteTable, collapse
from tests.backends import Backend
from tests import rawhttp
from tests.conftest import StartProxy, metrics, url_of


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/users/42", "/users/{id}"),
        ("/users/42/orders/7", "/users/{id}/orders/{id}"),
        ("/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/o/{id}"),
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{id}"),
        ("/t/eyJhbGciOiJIUzI1NiJ9abc123", "/t/{id}"),
        ("/settings/notification-preferences", "/settings/notification-preferences"),
        ("/v2/items", "/v2/items"),
        ("/", "/"),
        ("/a/\x1b[31mred", "/a/\\x1b[31mred"),  # an ANSI escape, %-decoded or raw
        ("/a/x\ty/\n", "/a/x\\ty/\\n"),
        ("/a/\x00/\u200b/\x7f", "/a/\\x00/\\u200b/\\x7f"),  # NUL, a zero-width space, DEL
        ("/caf\u00e9/a b", "/caf\u00e9/a b"),  # printable: kept as they are
        ("/fixtures/facetable/123.json", "/fixtures/facetable/{id}.json"),  # an id with a file extension
        ("/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301.csv", "/o/{id}.csv"),
        ("/api/1.2/x", "/api/1.2/x"),  # a version, not an id with an extension
        ("/files/report.json", "/files/report.json"),
    ],
)
def test_collapse(path: str, route: str) -> None:
    """Numbers, UUIDs, long hex and long tokens with digits collapse to {id} (keeping a file extension); words and
    versions stay; characters that are not printable are escaped."""
    assert collapse(path) == route


def test_configured_templates_win_in_order() -> None:
    """The first matching template is the route, even where collapse would say otherwise."""
    table = RouteTable(["/users/{name}/profile", "/users/{id}", "/files/{path}"])
    assert table.route("/users/alice/profile") == "/users/{name}/profile"
    assert table.route("/users/alice") == "/users/{id}"
    assert table.route("/files/a/b") == "/files/a/b"  # a placeholder is one segment


def test_cap_bounds_distinct_routes() -> None:
    """After max_routes distinct routes, new ones are 'other'; known ones keep their name."""
    table = RouteTable(max_routes=3)
    assert [table.route(p) for p in ("/a", "/b", "/c", "/d", "/a")] == ["/a", "/b", "/c", OTHER, "/a"]


def test_random_paths_add_no_series_past_the_cap() -> None:
    """10,000 random paths produce at most max_routes + 1 distinct labels."""
    rng = random.Random(7)
    table = RouteTable(max_routes=200)
    labels = set()
    for _ in range(10_000):
        segments = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 8))) for _ in range(rng.randint(1, 4))]
        labels.add(table.route("/" + "/".join(segments)))
    assert len(labels) <= 201
    assert OTHER in labels


def test_route_cache_is_bounded_and_gives_the_uncached_answer() -> None:
    """Past the cap and across cache resets, every path keeps the route it first got."""
    table = RouteTable(["/users/{id}"], max_routes=5)
    paths = [f"/p{i}/x" for i in range(6000)] + ["/users/7", "/a/123"]
    first = {path: table.route(path) for path in paths}
    assert table.cached_paths <= CACHED_PATHS
    assert all(table.route(path) == first[path] for path in reversed(paths))
    assert first["/users/7"] == "/users/{id}" and first["/p5/x"] == "other" and first["/p0/x"] == "/p0/x"


async def test_metric_series_bounded_after_10000_random_paths(primary: Backend, start_proxy: StartProxy) -> None:
    """10,000 requests to random paths leave at most 201 route label values on every metric."""
    proxy = await start_proxy(primary.url)
    rng = random.Random(3)
    paths = ["/" + "/".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(2)) for _ in range(10_000)]
    connector = aiohttp.TCPConnector(limit=32)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(paths)

        async def worker() -> None:
            for path in queue:
                async with session.get(url_of(proxy) + path) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(32)))
    m = metrics(proxy)
    assert len(primary.seen) == 10_000
    for name in ("shadowdiff_requests_total", "shadowdiff_upstream_responses_total"):
        assert len(m.label_values(name, "route")) <= 201, name


async def test_route_labels_from_control_characters_are_escaped(primary: Backend, start_proxy: StartProxy) -> None:
    """Paths with %-encoded and raw control characters give route labels with none in them."""
    proxy = await start_proxy(primary.url)
    for target in (b"/a/%1b%5b31mred", b"/b/%00%0a%7f", b"/c/\x01x"):
        await rawhttp.send(url_of(proxy), b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    routes = metrics(proxy).label_values("shadowdiff_requests_total", "route")
    assert {"/a/\\x1b[31mred", "/b/\\x00\\n\\x7f"} <= routes, routes
    assert all(route.isprintable() for route in routes), routes
