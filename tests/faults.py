"""A raw asyncio HTTP/1.1 server that misbehaves on purpose, for use as primary or shadow.

Modes:
  ok              a well-formed 200 with the body
  delay           waits `delay` seconds, then answers ok
  black_hole      accepts, reads, never answers
  reset_mid_body  promises the whole body, sends half, then resets the connection (RST)
  garbage_status  answers a line that is not HTTP
  cl_te_conflict  answers with both Content-Length and Transfer-Encoding: chunked
  short_body      promises 100 bytes, sends 10, then closes (FIN)
  trickle         sends the body one byte every `interval` seconds
A refusing upstream needs no server: use `free_port()` from tests.backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

MODES = ("ok", "delay", "black_hole", "reset_mid_body", "garbage_status", "cl_te_conflict", "short_body", "trickle")


class FaultServer:
    def __init__(self, mode: str, *, body: bytes = b'{"ok": true}', delay: float = 2.0, interval: float = 0.2) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.body = body
        self.delay = delay
        self.interval = interval
        self.url = ""
        self.requests = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                if not await getattr(self, f"_{self.mode}")(writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _head(self, length: int) -> bytes:
        return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()

    async def _ok(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(self._head(len(self.body)) + self.body)
        await writer.drain()
        return True

    async def _delay(self, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(self.delay)
        return await self._ok(writer)

    async def _black_hole(self, writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()  # until the connection is closed by stop() or the peer
        return False

    async def _reset_mid_body(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(self._head(len(self.body) * 2) + self.body)
        await writer.drain()
        _reset(writer)
        return False

    async def _garbage_status(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6 not http at all\r\n\r\n")
        await writer.drain()
        return False

    async def _cl_te_conflict(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        await writer.drain()
        return False

    async def _short_body(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(self._head(100) + b"0123456789")
        await writer.drain()
        return False

    async def _trickle(self, writer: asyncio.StreamWriter) -> bool:
        writer.write(self._head(len(self.body)))
        for byte in self.body:
            await writer.drain()
            await asyncio.sleep(self.interval)
            writer.write(bytes([byte]))
        await writer.drain()
        return True


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
