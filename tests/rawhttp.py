"""A minimal HTTP/1.1 client over a raw socket, for byte-exact assertions.

It sends exactly the bytes it is given and returns the response head as sent
(status line, header lines in order and case) and the body with only the
framing (chunked encoding) removed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class RawResponse:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool  # the framing said the body ended (not a cut connection)

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    def without(self, *names: str) -> list[tuple[str, str]]:
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]


async def send(url: str, request: bytes, *, timeout: float = 10.0, head: bool = False) -> RawResponse:
    """Send raw `request` bytes to http://host:port and read one response until close."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(_read_response(reader, head), timeout)
    finally:
        writer.close()
    return parse(data, head=head)


async def _read_response(reader: asyncio.StreamReader, head: bool) -> bytes:
    """Read until the framing says the response is complete, or the peer closes."""
    data = b""
    while True:
        try:
            chunk = await reader.read(65536)
        except ConnectionError:
            return data
        if not chunk:
            return data
        data += chunk
        response = parse(data, head=head)
        framed = response.header("Content-Length") is not None or response.values("Transfer-Encoding") or head
        if response.complete and (framed or response.status in (204, 304)):
            return data


def parse(data: bytes, *, head: bool = False) -> RawResponse:
    head_bytes, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return RawResponse(head_bytes.decode("latin-1"), [], b"", complete=False)
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    response = RawResponse(lines[0], headers, b"", complete=True)
    status = response.status
    if head or status in (204, 304) or 100 <= status < 200:
        response.complete = rest == b""
        return response
    if any(v.lower() == "chunked" for v in response.values("Transfer-Encoding")):
        response.body, response.complete = _dechunk(rest)
    elif response.header("Content-Length") is not None:
        length = int(response.header("Content-Length"))
        response.body, response.complete = rest[:length], len(rest) >= length
    else:
        response.body = rest
    return response


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out, pos = [], 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return b"".join(out), False
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out), True
        start = end + 2
        if len(data) < start + size:
            out.append(data[start:])
            return b"".join(out), False
        out.append(data[start : start + size])
        pos = start + size + 2
