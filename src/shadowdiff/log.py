"""JSON-lines logging on stdout, via orjson.

`event(level, name, **fields)` writes one line: `{"ts", "level", "event", ...}`.
Library loggers (aiohttp, asyncio) are routed through the same formatter so the
stream stays machine-readable.

In `serve`, lines go through a bounded queue to a writer thread: a stdout that
nobody reads (a stuck log shipper, a full pipe) must never stall the event loop
that serves the primary. When the queue is full (QUEUE_LINES lines or QUEUE_BYTES
of them), lines are dropped and counted
(`dropped()`), never queued without limit.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import orjson

from shadowdiff.offloop import OffLoop

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_threshold = logging.INFO
QUEUE_LINES = 10_000
QUEUE_BYTES = 8 * 1024 * 1024  # and at most this much of them

_writer: OffLoop[bytes] | None = None


def configure(level: str = "info", *, background: bool = False) -> None:
    """Set the threshold and send stdlib logging through the JSON formatter.

    background=True starts the writer thread (for long-running commands).
    """
    global _writer
    set_level(level)
    if background and _writer is None:
        _writer = OffLoop("shadowdiff-log", _write_now, QUEUE_LINES, max_bytes=QUEUE_BYTES)
    handler = _LineHandler()
    handler.setFormatter(_JsonFormatter())
    logging.getLogger().handlers[:] = [handler]


def set_level(level: str) -> None:
    """The threshold for our events and library records (also a live config change)."""
    global _threshold
    _threshold = _LEVELS[level]
    logging.getLogger().setLevel(_threshold)


def shutdown(timeout: float = 2.0) -> None:
    """Flush queued lines (up to `timeout`) and stop the writer thread."""
    global _writer
    if _writer is not None:
        _writer.close(timeout)
        _writer = None


def dropped() -> int:
    """Lines dropped because stdout did not keep up."""
    return _writer.dropped if _writer is not None else 0


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
    _emit(orjson.dumps(record, default=repr, option=orjson.OPT_APPEND_NEWLINE))


def emit_line(line: bytes) -> None:
    """Write one ready-made line (ending in a newline) the way events are written."""
    _emit(line)


def _emit(line: bytes) -> None:
    if _writer is not None:
        _writer.put(line)
    else:
        _write_now(line)


def _write_now(line: bytes) -> None:
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


class _LineHandler(logging.Handler):
    """Library log records (aiohttp's access and error logs) take the same bounded path."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _emit(self.format(record).encode() + b"\n")
        except Exception:  # a record that cannot be formatted must not raise into the loop
            self.handleError(record)


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
