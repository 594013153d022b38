"""The experiment over its lanes: every lane compared, the shared wait for the primary, the relay's stop, latencies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from shadowdiff.compare.rules import EMPTY
from shadowdiff.buffers import BufferBudget
from shadowdiff.config import CompareConfig, LoggingConfig
from shadowdiff.experiment.breaker import Breaker
from shadowdiff.experiment.comparator import Comparator
from shadowdiff.experiment.lanes import Lane
from shadowdiff.experiment.mirror import Experiment, Mirror
from shadowdiff.http.upstream import Limits, Upstream
from shadowdiff.metrics import Metrics
from shadowdiff.model import SHADOW
from shadowdiff.publish.pipeline import Publisher
from shadowdiff.publish.redact import Redactor
from shadowdiff.service import ShadowDiff
from tests.backends import Backend, serve_app
from tests.conftest import metrics, proxy_config, settle, until, url_of
from tests.values import Recorder, request, seen

LIMITS = Limits(connect_timeout=1.0, read_timeout=None, total_timeout=5.0, max_connections=10, max_headers=256,
                max_header_line_bytes=65536)  # fmt: skip


@pytest.fixture
async def mirror_over() -> AsyncIterator:
    """Build a Mirror over lanes to the given backends; everything is closed at teardown."""
    built: list[tuple[Mirror, list[Upstream]]] = []

    async def build(lanes: dict[str, str], *, sink: Recorder) -> tuple[Mirror, list[str]]:
        metrics, skipped = Metrics(), []
        upstreams = [Upstream(name, url, LIMITS) for name, url in lanes.items()]
        for upstream in upstreams:
            await upstream.start()
        mirror = Mirror(
            [
                Lane(u.name, u, max_in_flight=10, breaker=Breaker(0, 1.0), marker=("X-Shadow-Request", "true"),
                     client_host=False, metrics=metrics, on_skip=skipped.append)
                for u in upstreams
            ],  # fmt: skip
            comparator=Comparator(CompareConfig()),
            publisher=Publisher(metrics, Redactor(LoggingConfig()), [sink]),
            metrics=metrics,
            on_skip=skipped.append,
            budget=BufferBudget(64 << 20),
        )
        built.append((mirror, upstreams))
        return mirror, skipped

    yield build
    for mirror, upstreams in built:
        await mirror.drain(1.0)
        await mirror.comparator.close()
        for upstream in upstreams:
            await upstream.close()




async def test_every_lane_is_sent_and_compared(mirror_over, primary: Backend, shadow: Backend) -> None:
    """Two lanes take the same copy; each answer is compared with the control's, under its own lane name."""
    sink = Recorder()
    mirror, _ = await mirror_over({SHADOW: shadow.url, "second": primary.url}, sink=sink)
    experiment = mirror.start(request("/whoami", target="/whoami"), rules=EMPTY, body_limit=1 << 20, control_wait=1.0)
    assert experiment is not None
    experiment.deliver(seen("primary", {"backend": "primary"}))
    await until(lambda: len(sink.reports) == 2)
    body_paths = {r.comparison.lane: [d.path for d in r.comparison.differences if d.part == "body"] for r in sink.reports}
    assert body_paths == {SHADOW: ["$.backend"], "second": []}
    assert set(sink.reports[0].comparison.exchange.candidates) == {SHADOW, "second"}
    assert len(shadow.seen) == len(primary.seen) == 1
    assert mirror.in_flight == 0


async def test_giving_up_never_cancels_the_shared_control(mirror_over, shadow: Backend) -> None:
    """Past control_wait the experiment gives up (primary_unfinished) without cancelling the control's future:
    another waiter on it still gets the observation when it comes."""
    sink = Recorder()
    mirror, skipped = await mirror_over({SHADOW: shadow.url}, sink=sink)
    experiment = mirror.start(request(), rules=EMPTY, body_limit=1 << 20, control_wait=0.1)
    assert experiment is not None

    async def another_waiter() -> object:
        return await experiment.control

    other = asyncio.ensure_future(another_waiter())
    await until(lambda: skipped == ["primary_unfinished"])
    assert experiment.wanted is False
    assert not other.done()
    late = seen("primary", {"a": 1})
    experiment.deliver(late)
    assert await asyncio.wait_for(other, 2) is late
    await until(lambda: mirror.in_flight == 0)
    assert sink.reports == []  # given up: nothing compared


def _streaming_app(*, head_delay: float, chunks: int, chunk_delay: float) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(head_delay)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = chunks * 1000
        await response.prepare(request)
        for _ in range(chunks):
            await asyncio.sleep(chunk_delay)
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/stream", stream)
    return app


async def test_an_abandoned_relay_stops_capturing(shadow: Backend, client: aiohttp.ClientSession) -> None:
    """A primary still streaming past shadow.timeout: the client gets every byte, the exchange is counted
    primary_unfinished, and what the relay finally delivers holds no body (capture stopped at the next chunk)."""
    runner, url = await serve_app(_streaming_app(head_delay=0.0, chunks=5, chunk_delay=0.15))
    proxy = ShadowDiff(proxy_config(url, shadow.url, shadow={"timeout": 0.2}))
    started: list[Experiment] = []
    real_start = proxy.mirror.start

    def recording_start(*args, **kwargs):
        experiment = real_start(*args, **kwargs)
        started.append(experiment)
        return experiment

    proxy.mirror.start = recording_start  # a spy: the real start, its result kept
    await proxy.start()
    try:
        async with client.get(url_of(proxy) + "/stream") as response:
            assert len(await response.read()) == 5000
        await settle(proxy)
    finally:
        await proxy.stop()
        await runner.cleanup()
    (experiment,) = started
    delivered = experiment.control.result()
    assert delivered is not None and delivered.ok and delivered.body is None
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="primary_unfinished") == 1


async def test_latency_is_measured_the_same_way_on_both_legs(client: aiohttp.ClientSession) -> None:
    """Primary and shadow are the same slow service: both legs report the same time to the head and to the whole body."""
    app = _streaming_app(head_delay=0.2, chunks=2, chunk_delay=0.1)
    primary_runner, primary_url = await serve_app(app)
    shadow_runner, shadow_url = await serve_app(_streaming_app(head_delay=0.2, chunks=2, chunk_delay=0.1))
    sink = Recorder()
    try:
        proxy = ShadowDiff(proxy_config(primary_url, shadow_url), extra_sinks=[sink])
        await proxy.start()
        try:
            async with client.get(url_of(proxy) + "/stream") as response:
                await response.read()
            await settle(proxy)
        finally:
            await proxy.stop()
    finally:
        await primary_runner.cleanup()
        await shadow_runner.cleanup()
    (report,) = sink.reports
    for side in (report.comparison.control, report.comparison.candidate):
        assert side.head_elapsed is not None
        assert 0.2 <= side.head_elapsed < 0.35, side
        assert 0.4 <= side.elapsed < 0.7, side
    control, candidate = report.comparison.control, report.comparison.candidate
    assert abs(control.head_elapsed - candidate.head_elapsed) < 0.1
    assert abs(control.elapsed - candidate.elapsed) < 0.1
