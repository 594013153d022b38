"""SharedRender: /metrics rendered in a thread, one render shared by concurrent scrapes, reused within the interval.

Renders are counted by a real collector registered in a real registry: each render calls its collect() once.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from shadowdiff.scrape import MAX_CACHED_PER_SECOND, SharedRender
from tests.collectors import CountingCollector
from tests.conftest import until


def registry_with(collector: CountingCollector) -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry, Counter("hits", "A value that changes between renders.", registry=registry)


async def test_concurrent_scrapes_share_one_render_run_off_the_loop() -> None:
    """Eight scrapes arriving while a render is under way all get that render's bytes: collect() runs once,
    in another thread than the loop's, and the loop keeps running meanwhile; with interval 0 the next scrape
    renders anew."""
    gate = threading.Event()
    collector = CountingCollector(gate)
    registry, _ = registry_with(collector)
    shared = SharedRender(lambda: generate_latest(registry), 0.0)
    scrapes = [asyncio.ensure_future(shared.get()) for _ in range(8)]
    await until(lambda: collector.calls == 1)
    await asyncio.sleep(0.05)  # the loop runs while the render is held
    assert not any(scrape.done() for scrape in scrapes)
    gate.set()
    bodies = await asyncio.gather(*scrapes)
    assert collector.calls == 1
    assert len(set(bodies)) == 1 and b"renders 1.0" in bodies[0]
    assert collector.threads[0] != threading.get_ident()
    assert b"renders 2.0" in await shared.get()
    assert collector.calls == 2


async def test_within_the_interval_the_last_render_is_served() -> None:
    """Within min_interval of a render, scrapes get its bytes even though values changed (no new collect());
    setting min_interval to 0 while serving makes the next scrape render, with the new values."""
    collector = CountingCollector()
    registry, hits = registry_with(collector)
    shared = SharedRender(lambda: generate_latest(registry), 60.0)
    first = await shared.get()
    hits.inc(5)
    for _ in range(3):
        assert await shared.get() == first
    assert collector.calls == 1
    shared.min_interval = 0.0
    fresh = await shared.get()
    assert collector.calls == 2
    assert b"hits_total 5.0" in fresh and b"hits_total 0.0" in first


async def test_a_failed_render_fails_its_scrapes_and_the_next_one_renders_again() -> None:
    """A render that raises gives every scrape waiting for it the error (the admin listener answers 500)
    and is not cached: the next scrape renders again and succeeds."""
    gate = threading.Event()
    collector = CountingCollector(gate)
    collector.fail_next = True
    registry, _ = registry_with(collector)
    shared = SharedRender(lambda: generate_latest(registry), 60.0)
    scrapes = [asyncio.ensure_future(shared.get()) for _ in range(3)]
    await until(lambda: collector.calls == 1)
    gate.set()
    results = await asyncio.gather(*scrapes, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3
    assert b"renders 2.0" in await shared.get()


async def test_a_scraper_that_gives_up_does_not_cancel_the_shared_render() -> None:
    """One of two waiting scrapes is cancelled (its client went away): the other still gets the render."""
    gate = threading.Event()
    collector = CountingCollector(gate)
    registry, _ = registry_with(collector)
    shared = SharedRender(lambda: generate_latest(registry), 0.0)
    quitter, stayer = asyncio.ensure_future(shared.get()), asyncio.ensure_future(shared.get())
    await until(lambda: collector.calls == 1)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    gate.set()
    assert b"renders 1.0" in await stayer
    assert collector.calls == 1


async def test_cached_bytes_are_paced() -> None:
    """Ten scrapes at once within the interval get the cached bytes one every 1/MAX_CACHED_PER_SECOND s,
    not all at once (a scraper looping on the cache cannot make the loop write it a thousand times a second)."""
    collector = CountingCollector()
    registry, _ = registry_with(collector)
    shared = SharedRender(lambda: generate_latest(registry), 60.0)
    first = await shared.get()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await asyncio.gather(*(shared.get() for _ in range(10))) == [first] * 10
    assert loop.time() - began >= 9 / MAX_CACHED_PER_SECOND
    assert collector.calls == 1
