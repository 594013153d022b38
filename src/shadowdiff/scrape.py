"""/metrics for any number of scrapers: rendered off the event loop, at most once per interval.

At the route cap the exposition is ~700 KB of text that prometheus-client builds in pure
Python (tens of milliseconds). Rendered on the loop for every scrape, as in 0.4.0, four
scrapers in a loop moved the clients' p50 from 2.4 ms to 431 ms. `SharedRender`:

- renders in a thread, so the loop keeps serving traffic while it runs;
- lets scrapes that arrive while a render is under way wait for that one render;
- serves the last render's bytes to every scrape within `min_interval` seconds after it
  finished, so a scrape storm costs at most one render per (render time + interval),
  whatever the number of scrapers;
- paces those served bytes: at most MAX_CACHED_PER_SECOND of them a second, the others
  wait their turn. Writing ~700 KB is cheap once, not a thousand times a second: four
  scrapers looping on the cached bytes fetched them ~900 times a second and still moved
  the clients' p50 5x. A Prometheus server scrapes every 15-60 s; pacing costs it nothing.

The thread alone is not enough: a render holds the GIL for most of its run, and each time
the loop gives the GIL up (every system call) it waits up to a switch interval (5 ms) to
get it back, so back-to-back renders still multiply client latency
(`benchmarks/scrape.py` measures both). The interval is what bounds the cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MAX_CACHED_PER_SECOND = 20  # scrapes served a render's cached bytes, all scrapers together


class SharedRender:
    """`await get()`: the bytes of `render()`, run in a thread; one render at a time, shared by
    every scrape waiting for it, reused (paced) for `min_interval` seconds after it finished
    (0: a new render for every scrape that does not find one under way)."""

    def __init__(self, render: Callable[[], bytes], min_interval: float) -> None:
        self._render = render
        self.min_interval = min_interval  # may be changed while serving
        self._body: bytes | None = None
        self._finished = 0.0  # loop time of the last render's end
        self._pending: asyncio.Future[bytes] | None = None
        self._next_cached = 0.0  # loop time from which the next cached answer may go

    async def get(self) -> bytes:
        if self._pending is None:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if self._body is not None and now - self._finished < self.min_interval:
                turn = max(now, self._next_cached)
                self._next_cached = turn + 1 / MAX_CACHED_PER_SECOND
                if turn > now:
                    await asyncio.sleep(turn - now)
                return self._body
            self._pending = pending = asyncio.ensure_future(self._render_off_loop())
            # A scraper that gives up must not leave an error unretrieved, nor cancel the
            # render the others wait for (hence shield).
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(self._pending)

    async def _render_off_loop(self) -> bytes:
        try:
            body = await asyncio.to_thread(self._render)
            self._body, self._finished = body, asyncio.get_running_loop().time()
            return body
        finally:
            self._pending = None
