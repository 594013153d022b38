"""JSON-lines logging on stdout, via orjson.

`event(level, name, **fields)` writes one line: `{"ts", "level", "event", ...}`.
Library loggers (aiohttp, asyncio) are routed through the same formatter so the
stream stays machine-readable.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import orjson

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_threshold = logging.INFO


def configure(level: str = "info") -> None:
    """Set the threshold and send stdlib logging through the JSON formatter."""
    global _threshold
    _threshold = _LEVELS[level]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_threshold)


def enabled(level: str) -> bool:
    return _LEVELS[level] >= _threshold


def event(level: str, name: str, *, exc_info: BaseException | None = None, **fields: Any) -> None:
    """Write one JSON line: ts, level, event, then `fields` (serialised by orjson)."""
    if _LEVELS[level] < _threshold:
        return
    record: dict[str, Any] = {"ts": _timestamp(time.time()), "level": level, "event": name}
    record.update(fields)
    if exc_info is not None:
        record["traceback"] = "".join(traceback.format_exception(exc_info)).rstrip()
    _write(record)


def _write(record: dict[str, Any]) -> None:
    line = orjson.dumps(record, default=repr, option=orjson.OPT_APPEND_NEWLINE)
    stream = sys.stdout
    # A closed or broken stdout must not take a request down with it.
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(line)
        else:
            stream.write(line.decode())
        stream.flush()
    except (OSError, ValueError):
        pass


def _timestamp(now: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{whole}.{int(now % 1 * 1000):03d}Z"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "event": "library_log",
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            data["traceback"] = "".join(traceback.format_exception(record.exc_info[1])).rstrip()
        return orjson.dumps(data, default=repr).decode()
