"""Length-prefixed pickled messages over a pipe, between shadowdiff's own processes.

Two channels use it: the supervisor -> worker channel of `serve --workers N` (the
config, then any later message) and the jobs of the comparison worker. A frame is
an 8-byte big-endian length and a pickle of that many bytes. Both ends are
shadowdiff, started by shadowdiff; a frame past `max_bytes` is refused rather than
read (a process that was not started by its parent gets a clear error, not an
allocation of whatever its stdin's first bytes spell).

Nothing here imports more than the standard library: the comparison worker loads it.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from typing import Any

_LENGTH = 8
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class FrameError(Exception):
    """The stream does not hold a frame (too large, or cut off mid-frame)."""


def encode(message: Any) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(_LENGTH, "big") + payload


def _size(header: bytes, max_bytes: int) -> int:
    size = int.from_bytes(header, "big")
    if size > max_bytes:
        raise FrameError(f"a frame of {size} bytes is over the {max_bytes}-byte limit")
    return size


def read_blocking(fd: int, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The next message on a blocking file descriptor; EOFError at a clean end of stream.

    Reads exactly the frame's bytes, nothing past it (the rest of the stream stays
    for whoever reads it next).
    """
    header = _read_exactly(fd, _LENGTH, at_start=True)
    return pickle.loads(_read_exactly(fd, _size(header, max_bytes), at_start=False))


def _read_exactly(fd: int, size: int, *, at_start: bool) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            if at_start and not data:
                raise EOFError
            raise FrameError(f"stream ended {size - len(data)} bytes short of a frame")
        data += chunk
    return bytes(data)


async def read(reader: asyncio.StreamReader, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The next message from an asyncio stream; EOFError at a clean end of stream."""
    try:
        header = await reader.readexactly(_LENGTH)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise EOFError from None
        raise FrameError("stream ended inside a frame's length") from None
    try:
        return pickle.loads(await reader.readexactly(_size(header, max_bytes)))
    except asyncio.IncompleteReadError:
        raise FrameError("stream ended inside a frame") from None


class Decoder:
    """Frames out of bytes that arrive in pieces (for a reader callback on a raw fd)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> list[Any]:
        """The messages completed by `data`, in order."""
        self._buffer += data
        out = []
        while len(self._buffer) >= _LENGTH:
            size = _size(bytes(self._buffer[:_LENGTH]), self._max_bytes)
            if len(self._buffer) < _LENGTH + size:
                break
            out.append(pickle.loads(bytes(self._buffer[_LENGTH : _LENGTH + size])))
            del self._buffer[: _LENGTH + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)
