"""OffLoop: a bounded hand-off to a thread, bounded in items and, for bytes, in size."""

from __future__ import annotations

import threading
import time

from shadowdiff.offloop import OffLoop


def test_a_stuck_handler_bounds_the_queue_in_bytes() -> None:
    """While the handler is stuck, items past max_bytes are dropped and counted; once it moves, room comes back."""
    release = threading.Event()
    handled: list[bytes] = []

    def handle(item: bytes) -> None:
        release.wait(10)
        handled.append(item)

    off = OffLoop("test", handle, 1000, max_bytes=1000)
    accepted = [off.put(b"x" * 100) for _ in range(30)]
    # One item may be in the handler already; ten fit the queue's bytes at most, with that one.
    assert 10 <= sum(accepted) <= 11 and off.dropped == 30 - sum(accepted)
    release.set()
    deadline = time.monotonic() + 5
    while len(handled) < sum(accepted) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert off.put(b"y" * 900)
    off.close(5)
    assert handled[-1] == b"y" * 900
