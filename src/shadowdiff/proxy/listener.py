"""The traffic listener's protections below the handler: a connection cap, and
quiet accounting of requests aiohttp's parser rejects.

Past `listen.max_connections` a new connection gets an immediate 503 and is
closed: shedding load fast beats letting every client hang. Requests too
malformed to parse (smuggling shapes, bad framing) are answered 400 by aiohttp
before any handler runs; they are counted, and kept out of the error log where
a scanner would otherwise flood it with tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from shadowdiff.http import _aiohttp

_SHED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 29\r\n"
    b"Connection: close\r\n\r\nproxy at its connection limit\n"
)


class TrafficServer(_aiohttp.Server):
    """aiohttp's low-level server with a cap on concurrent client connections.

    Past the cap the connection gets its own tiny protocol that answers 503 and
    closes: aiohttp never sees it, so no handler is started just to be torn down.
    """

    def __init__(self, handler: Any, *, max_connections: int, on_shed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._max_connections = max_connections
        self._on_shed = on_shed
        # Counted when the protocol is made, not when aiohttp registers it a loop turn
        # later: a burst of simultaneous connections cannot slip past the cap.
        self.open_connections = 0

    def admit(self) -> asyncio.BaseProtocol | None:
        if self.open_connections >= self._max_connections:
            self._on_shed()
            return _Shed()
        self.open_connections += 1
        return None

    def released(self) -> None:
        self.open_connections -= 1


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
