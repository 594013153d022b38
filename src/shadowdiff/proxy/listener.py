"""The traffic listener's protections below the handler: a connection cap, the
request-head bounds (proxy/edge.py), and quiet accounting of parser rejections.

At `listen.max_connections` the longest-waiting connection that is handling no
request gives way to a new one; only when every connection is busy does the new
one get an immediate 503 and a close: shedding load fast beats letting every
client hang. Requests too malformed to parse (smuggling shapes, bad framing) are
answered 400, and heads past the limits 431, before any handler runs; they are
counted, and kept out of the error log where a scanner would otherwise flood it
with tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from shadowdiff.http import _aiohttp
from shadowdiff.proxy.edge import ConnectionEdge
from shadowdiff.proxy.response import raw_answer

_SHED = raw_answer(503)


class TrafficServer(_aiohttp.Server):
    """aiohttp's low-level server with a cap on concurrent client connections.

    At the cap a waiting connection is evicted to make room (`edge.evict()`); when
    none can be, the new connection gets its own tiny protocol that answers 503 and
    closes: aiohttp never sees it, so no handler is started just to be torn down.
    """

    def __init__(
        self,
        handler: Any,
        *,
        max_connections: int,
        max_head_bytes: int,
        head_timeout: float,
        on_shed: Callable[[], None],
        on_evicted: Callable[[str], None],
        on_head_timeout: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._max_connections = max_connections
        self._on_shed = on_shed
        self.edge = ConnectionEdge(
            self._loop,
            head_limit=max_head_bytes,
            head_timeout=head_timeout,
            on_evicted=on_evicted,
            on_head_timeout=on_head_timeout,
        )
        # Counted when the protocol is made, not when aiohttp registers it a loop turn
        # later: a burst of simultaneous connections cannot slip past the cap.
        self.open_connections = 0

    def admit(self) -> asyncio.BaseProtocol | None:
        if self.open_connections < self._max_connections:
            self.open_connections += 1
        elif not self.edge.evict():  # an evicted connection's place passes to this one
            self._on_shed()
            return _Shed()
        return None

    def released(self, handler: Any) -> None:
        if not getattr(handler, "evicted", False):  # an evicted one's place was passed on
            self.open_connections -= 1

    async def shutdown(self, timeout: float | None = None) -> None:
        self.edge.close()
        await super().shutdown(timeout)


class _Shed(asyncio.Protocol):
    # Works with any event loop's transport (uvloop's is not an asyncio.Transport).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_SHED)  # type: ignore[attr-defined]
        transport.close()


class MalformedRequests(logging.Filter):
    """Counts parser rejections on aiohttp's server logger instead of logging tracebacks.

    aiohttp logs a bad method on a connection's first request (TLS, scanners) at debug
    level, so the logger is opened to debug while attached; records below the root
    logger's level that are not parser rejections are dropped here as they were before.
    """

    def __init__(self, count: Callable[[], None]) -> None:
        super().__init__()
        self._count = count
        self._logger: logging.Logger | None = None
        self._level = logging.NOTSET

    def attach(self, logger: logging.Logger) -> None:
        self._logger, self._level = logger, logger.level
        logger.setLevel(logging.DEBUG)
        logger.addFilter(self)

    def detach(self) -> None:
        if self._logger is not None:
            self._logger.removeFilter(self)
            self._logger.setLevel(self._level)
            self._logger = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self._count()
            return False
        return record.levelno >= logging.getLogger().getEffectiveLevel()
