"""For tests of how often /metrics is rendered: a real collector that counts its renders, and
concurrent scrapes that must all fall within one render."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import aiohttp
from prometheus_client.core import GaugeMetricFamily


class CountingCollector:
    """Counts its collect() calls (one per render) and records the thread each ran on; with `gate`,
    each call waits for it to be set first (a slow render that the test lets finish)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self.threads: list[int] = []
        self.gate = gate
        self.fail_next = False

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # so that registering it does not call collect()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.calls += 1
        self.threads.append(threading.get_ident())
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the render"
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("render failed")
        yield GaugeMetricFamily("renders", "collect() calls so far", value=self.calls)


async def scrapes_within_one_interval(
    url: str, client: aiohttp.ClientSession, count: int, interval: float, renders: Callable[[], int]
) -> list[bytes]:
    """`count` concurrent scrapes of `url`/metrics, all answered within `interval` of the first being sent,
    so they must all come from one render (nothing is cached when this is called): asserts that `renders()`
    went up by exactly one, and returns the bodies. When the machine was too slow for that, it waits out
    the interval and tries again (5 times at most)."""
    loop = asyncio.get_running_loop()

    async def scrape() -> bytes:
        async with client.get(url + "/metrics") as response:
            assert response.status == 200
            return await response.read()

    for _ in range(5):
        before, began = renders(), loop.time()
        bodies = await asyncio.gather(*(scrape() for _ in range(count)))
        if loop.time() - began < interval:
            assert renders() == before + 1
            return bodies
        await asyncio.sleep(interval)
    raise AssertionError(f"{count} scrapes never fitted in {interval} s")
