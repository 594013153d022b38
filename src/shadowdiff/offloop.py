"""Work handed to a thread through a bounded queue: the event loop never waits for I/O.

`OffLoop.put()` never blocks: past `capacity` items (or `max_bytes` of them, when
items have a size), an item is dropped and counted (`dropped`), never queued
without limit. The log writer is one (stdout nobody reads
must not stall the proxy); so is every publish sink that writes somewhere.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_STOP = object()


class OffLoop(Generic[T]):
    """A daemon thread calling `handle(item)` for each item put, in order.

    An item whose handling raises is counted in `failed` and the thread goes on:
    `on_error(exc)` (if given) is told, from the thread.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[T], None],
        capacity: int,
        *,
        on_error: Callable[[Exception], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.name = name
        self._handle = handle
        self._on_error = on_error
        self._items: queue.Queue[object] = queue.Queue(capacity)
        self.dropped = 0
        self.failed = 0
        # With max_bytes, items are bytes and their lengths are bounded too. Each counter is
        # written by one thread only (put: the caller's; handled: the thread's): no lock.
        self._max_bytes = max_bytes
        self._put_bytes = 0
        self._handled_bytes = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> bool:
        """Queue `item`; False (and counted) when the queue is full."""
        size = len(item) if self._max_bytes is not None else 0  # type: ignore[arg-type]
        if size and self._put_bytes - self._handled_bytes + size > self._max_bytes:  # type: ignore[operator]
            self.dropped += 1
            return False
        try:
            self._items.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        self._put_bytes += size
        return True

    def _run(self) -> None:
        while (item := self._items.get()) is not _STOP:
            try:
                self._handle(item)  # type: ignore[arg-type]
            except Exception as exc:  # one bad item must not stop the rest
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                if self._max_bytes is not None:
                    self._handled_bytes += len(item)  # type: ignore[arg-type]

    def close(self, timeout: float) -> None:
        """Let queued items be handled (up to `timeout`), then stop the thread."""
        try:
            self._items.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
