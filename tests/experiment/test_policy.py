"""Which requests are mirrored: methods, sampling, path filters, body size, observed at the shadow and in counters."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from shadowdiff.config import MirrorConfig
from shadowdiff.experiment.policy import MirrorPolicy, sample_point
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, settle, url_of

NO_HEADERS = CIMultiDictProxy(CIMultiDict())


@pytest.mark.parametrize(
    ("config", "method", "path", "body", "expected"),
    [
        (MirrorConfig(), "GET", "/a", 0, None),
        (MirrorConfig(), "POST", "/a", 0, "method"),
        (MirrorConfig(methods=("GET", "POST")), "POST", "/a", 0, None),
        (MirrorConfig(enabled=False), "GET", "/a", 0, "paused"),
        (MirrorConfig(include_paths=("/api/*",)), "GET", "/web/x", 0, "filtered"),
        (MirrorConfig(include_paths=("/api/*",)), "GET", "/api/x/y", 0, None),
        (MirrorConfig(exclude_paths=("/api/internal/*",)), "GET", "/api/internal/x", 0, "filtered"),
        (MirrorConfig(methods=("POST",), max_body_bytes=10), "POST", "/a", 11, "body_too_large"),
        (MirrorConfig(methods=("POST",), max_body_bytes=10), "POST", "/a", 10, None),
        (MirrorConfig(sample_rate=0.0), "GET", "/a", 0, "sampled_out"),
    ],
)
def test_skip_reason_table(config: MirrorConfig, method: str, path: str, body: int, expected: str | None) -> None:
    """Each policy rule gives its own skip reason, and None when the request should be mirrored."""
    assert MirrorPolicy(config, rng=lambda: 0.5).skip_reason(method, path, NO_HEADERS, body) == expected


def test_random_sampling_uses_the_rate() -> None:
    """A draw below the rate is mirrored, at or above it is sampled out."""
    config = MirrorConfig(sample_rate=0.25)
    assert MirrorPolicy(config, rng=lambda: 0.2499).skip_reason("GET", "/", NO_HEADERS, 0) is None
    assert MirrorPolicy(config, rng=lambda: 0.25).skip_reason("GET", "/", NO_HEADERS, 0) == "sampled_out"


def test_consistent_sampling_ignores_the_random_draw() -> None:
    """With sample_key set, the header value alone decides, whatever the random draw says."""
    config = MirrorConfig(sample_rate=0.5, sample_key="X-User-Id")
    users = [f"user-{i}" for i in range(200)]
    decisions = {}
    for draw in (0.0, 0.99):
        policy = MirrorPolicy(config, rng=lambda draw=draw: draw)
        for user in users:
            headers = CIMultiDictProxy(CIMultiDict({"X-User-Id": user}))
            decisions.setdefault(user, set()).add(policy.skip_reason("GET", "/", headers, 0))
    assert all(len(d) == 1 for d in decisions.values())
    mirrored = sum(1 for d in decisions.values() if d == {None})
    assert 60 < mirrored < 140  # about half of 200 users
    assert all(0 <= sample_point(u) < 1 for u in users)


async def _get(client: aiohttp.ClientSession, url: str, **kwargs) -> None:
    async with client.request(kwargs.pop("method", "GET"), url, **kwargs) as response:
        assert response.status == 200
        await response.read()


async def test_unsafe_methods_are_not_mirrored_by_default(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """POST, PUT and DELETE reach the primary only; GET, HEAD and OPTIONS reach both."""
    proxy = await start_proxy(primary.url, shadow.url)
    for method in ("POST", "PUT", "DELETE", "GET", "HEAD", "OPTIONS"):
        await _get(client, url_of(proxy) + "/echo", method=method, data=b"x" if method in ("POST", "PUT") else None)
    await settle(proxy)
    assert [s.method for s in primary.seen] == ["POST", "PUT", "DELETE", "GET", "HEAD", "OPTIONS"]
    assert sorted(s.method for s in shadow.seen) == ["GET", "HEAD", "OPTIONS"]
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="method") == 3


async def test_opted_in_post_is_mirrored_with_its_body(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With POST in mirror.methods, the shadow gets the same body; one over mirror.max_body_bytes is skipped."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"methods": ["GET", "POST"], "max_body_bytes": 100})
    await _get(client, url_of(proxy) + "/echo", method="POST", data=b'{"order": 1}')
    await _get(client, url_of(proxy) + "/echo", method="POST", data=b"x" * 101)
    await settle(proxy)
    assert [s.body for s in shadow.seen] == [b'{"order": 1}']
    assert len(primary.seen) == 2
    m = metrics(proxy)
    assert m.value("shadowdiff_mirror_skipped_total", reason="body_too_large") == 1
    assert m.value("shadowdiff_mirrored_total") == 1


async def test_sample_rate_zero_and_half(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """sample_rate 0 mirrors nothing; 0.5 mirrors roughly half; both count sampled_out."""
    none = await start_proxy(primary.url, shadow.url, mirror={"sample_rate": 0.0})
    for _ in range(20):
        await _get(client, url_of(none) + "/a")
    await settle(none)
    assert shadow.seen == []
    assert metrics(none).value("shadowdiff_mirror_skipped_total", reason="sampled_out") == 20

    half = await start_proxy(primary.url, shadow.url, mirror={"sample_rate": 0.5})
    for _ in range(200):
        await _get(client, url_of(half) + "/a")
    await settle(half)
    assert 60 < len(shadow.seen) < 140
    m = metrics(half)
    assert m.value("shadowdiff_mirrored_total") + m.value("shadowdiff_mirror_skipped_total", reason="sampled_out") == 200


async def test_consistent_key_mirrors_whole_sessions(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With sample_key, every request of a sampled user reaches the shadow and none of an unsampled one."""
    proxy = await start_proxy(primary.url, shadow.url, mirror={"sample_rate": 0.5, "sample_key": "X-User-Id"})
    users = [f"u{i}" for i in range(20)]
    for user in users:
        for n in range(3):
            await _get(client, url_of(proxy) + f"/s/{user}/{n}", headers={"X-User-Id": user})
    await settle(proxy)
    per_user = {u: sum(1 for s in shadow.seen if s.header("X-User-Id") == u) for u in users}
    assert set(per_user.values()) == {0, 3}
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="sampled_out") == 60 - len(shadow.seen)


async def test_path_filters(primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    """include_paths and exclude_paths decide which paths reach the shadow; the rest count as filtered."""
    proxy = await start_proxy(
        primary.url, shadow.url, mirror={"include_paths": ["/api/*"], "exclude_paths": ["/api/internal/*"]}
    )
    for path in ("/api/users/1", "/api/internal/debug", "/static/app.js", "/api/orders"):
        await _get(client, url_of(proxy) + path)
    await settle(proxy)
    assert sorted(s.raw_path for s in shadow.seen) == ["/api/orders", "/api/users/1"]
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="filtered") == 2


async def test_mirrored_equals_sum_of_outcomes_per_route(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Once drained, mirrored == match + mismatch + ignored + shadow_error for every route."""
    proxy = await start_proxy(primary.url, shadow.url)
    for path in ("/whoami/1", "/whoami/2", "/echo", "/status/204", "/gzip"):
        async with client.get(url_of(proxy) + path) as response:
            await response.read()
    await settle(proxy)
    m = metrics(proxy)
    routes = m.label_values("shadowdiff_mirrored_total", "route")
    assert routes == {"/whoami/{id}", "/echo", "/status/{id}", "/gzip"}
    for route in routes:
        outcomes = sum(
            m.value("shadowdiff_comparisons_total", route=route, outcome=o)
            for o in ("match", "mismatch", "ignored", "shadow_error")
        )
        assert m.value("shadowdiff_mirrored_total", route=route) == outcomes
    # /whoami answers with the backend's own name: a body mismatch on purpose.
    assert m.value("shadowdiff_comparisons_total", route="/whoami/{id}", outcome="mismatch") == 2
    assert m.value("shadowdiff_differences_total", route="/whoami/{id}", part="body") == 2
    assert m.value("shadowdiff_comparisons_total", route="/gzip", outcome="match") == 1


async def test_filters_see_the_whole_path(primary: Backend, shadow: Backend, start_proxy: StartProxy) -> None:
    """A '//host/api/x' target is the path '//host/api/x' for filters and routes, never '/api/x'."""
    from tests import rawhttp

    proxy = await start_proxy(primary.url, shadow.url, mirror={"include_paths": ["/api/*"]})
    await rawhttp.send(url_of(proxy), b"GET //evil.example/api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await settle(proxy)
    assert primary.seen[-1].raw_path == "//evil.example/api/x"
    assert shadow.seen == []
    m = metrics(proxy)
    assert m.value("shadowdiff_mirror_skipped_total", reason="filtered") == 1
    assert m.label_values("shadowdiff_requests_total", "route") == {"//evil.example/api/x"}
