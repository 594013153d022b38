"""The one bound on bodies held in memory: `mirror.max_buffered_bytes`, all requests together.

What it covers: the request bodies held whole for mirroring, and the response
bodies captured for comparison (the primary's and each lane's), from the moment
they are read until their experiment ends (compared, queued for the comparison
worker, or given up). Past it, nothing waits: a request body is streamed and not
mirrored (`buffer_full`), a response capture turns into a digest (compared by
hash, equal or not) and the client is served as always.

Each experiment holds an `Account`: what its request body and captures took, given
back together when it ends, however it ends.
"""

from __future__ import annotations


class BufferBudget:
    """Bytes held under a limit (the limit may change while running; what is held stays held)."""

    __slots__ = ("limit", "held")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class Account:
    """One experiment's share of the budget: taken piece by piece, given back whole by `close()`."""

    __slots__ = ("_budget", "held", "_closed")

    def __init__(self, budget: BufferBudget, held: int = 0) -> None:
        self._budget = budget
        self.held = held  # already taken from the budget (the request body) when it opens
        self._closed = False

    def take(self, size: int) -> bool:
        """Room for `size` more bytes, False if there is none or the account is closed (a capture
        still running after its experiment ended gets none: nothing would give it back)."""
        if self._closed or not self._budget.take(size):
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self._budget.give(size)
        self.held -= size

    def close(self) -> None:
        self._closed = True
        self._budget.give(self.held)
        self.held = 0
