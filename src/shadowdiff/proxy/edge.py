"""Request-head deadlines, and which connections give way at the connection cap.

Every admitted connection that is not handling a request is *waiting*, in the order
it began to wait (when it opened, or when its last answer was written): fresh ones,
ones with part of a head received, and kept-alive ones idle between requests.

- A head must arrive whole within `listen.head_timeout`, counted from the connection's
  start for a new connection and from the head's first byte on a kept-alive one (an
  idle kept-alive connection is `listen.idle_timeout`'s business). Past it, a partial
  head gets `408` and the connection is closed; a new connection that sent nothing is
  just closed. The deadline is checked a few times per `head_timeout` (at most each
  second), so it holds within that granularity.
- At `listen.max_connections`, the longest-waiting connection is closed to admit a new
  one (`shadowdiff_connections_evicted_total{reason}`: `slow_head` for one still short
  of a whole head, `idle` for a kept-alive one); only when none has waited
  `EVICTION_GRACE` is the new one refused (503). A connection whose request is being
  handled is never evicted. The grace keeps a burst of new clients past the cap from
  evicting each other before any could send a byte (they are accepted in one loop
  turn, before any data is read): they get 503s, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shadowdiff.http import _aiohttp
from shadowdiff.proxy.response import error_page, raw_answer

_HEAD_TIMEOUT = raw_answer(408)

SLOW_HEAD, IDLE = "slow_head", "idle"  # the reasons of metrics.EVICTION_REASONS
EVICTION_GRACE = 0.5  # seconds a connection must have waited before it can be evicted


class ConnectionEdge(_aiohttp.Edge):
    """The traffic listener's view of its connections' heads (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        head_limit: int,
        head_timeout: float,
        on_evicted: Callable[[str], None],
        on_head_timeout: Callable[[], None],
    ) -> None:
        self.head_limit = head_limit
        self._head_timeout = head_timeout
        self._loop = loop
        self._on_evicted = on_evicted
        self._on_head_timeout = on_head_timeout
        # Connection -> when it began to wait; insertion order is that order (oldest first).
        self._waiting: dict[_aiohttp.Connection, float] = {}
        self._period = min(1.0, max(0.05, head_timeout / 4))
        self._timer: asyncio.TimerHandle | None = loop.call_later(self._period, self._sweep)

    def waiting(self, conn: _aiohttp.Connection) -> None:
        self._waiting[conn] = self._loop.time()

    def busy(self, conn: _aiohttp.Connection) -> None:
        self._waiting.pop(conn, None)

    def gone(self, conn: _aiohttp.Connection) -> None:
        self._waiting.pop(conn, None)

    def error_page(self, status: int) -> _aiohttp.OwnResponse:
        return error_page(status)

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    def evict(self) -> bool:
        """Close the longest-waiting connection to make room; False if none has waited the grace."""
        cutoff = self._loop.time() - EVICTION_GRACE
        for conn, since in self._waiting.items():
            if since > cutoff:
                return False  # the rest began to wait later still
            if not conn.in_progress:
                break
        else:
            return False
        del self._waiting[conn]
        conn.evicted = True
        self._on_evicted(IDLE if conn.head_since is None else SLOW_HEAD)
        conn.drop(_HEAD_TIMEOUT if conn.head_bytes else b"")
        return True

    def _sweep(self) -> None:
        """Close the connections whose head is past its deadline."""
        cutoff = self._loop.time() - self._head_timeout
        late = [c for c in self._waiting if c.head_since is not None and c.head_since <= cutoff]
        for conn in late:
            del self._waiting[conn]
            if not conn.in_progress:
                self._on_head_timeout()
                conn.drop(_HEAD_TIMEOUT if conn.head_bytes else b"")
        self._timer = self._loop.call_later(self._period, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
