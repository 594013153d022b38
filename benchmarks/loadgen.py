"""The load generators behind bench.py: its built-in asyncio loader, and the parser of wrk's
(and wrk2's) output. Both give a LoadResult.

The built-in loader is used when wrk is not installed (or with --no-wrk): HTTP/1.1 keep-alive
connections, a fixed duration, either closed loop or paced at a fixed rate.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from common import percentile

REQUEST_TIMEOUT = 2.0  # like wrk's default --timeout: a request not answered by then is an error


# -- the built-in load generator ------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.sent_at = 0.0
        self.keep_alive = True
        self.timed_out = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                status = self._parse()
            except (ValueError, IndexError) as exc:
                waiter.set_exception(ConnectionError(f"bad response: {exc}"))
                return
            if status is not None:
                waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError() if self.timed_out else ConnectionError("closed"))

    def _parse(self) -> int | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        length, chunked, self.keep_alive = None, False, True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name, value = name.strip(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and b"close" in value:
                self.keep_alive = False
        pos = end + 4
        if chunked:
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
                if size == 0:
                    if buf[eol + 2: eol + 4] == b"\r\n":
                        pos = eol + 4
                        break
                    trailer = buf.find(b"\r\n\r\n", eol + 2)
                    if trailer < 0:
                        return None
                    pos = trailer + 4
                    break
                if len(buf) < eol + 2 + size + 2:
                    return None
                pos = eol + 2 + size + 2
        elif length is not None:
            if len(buf) < pos + length:
                return None
            pos += length
        elif not (status == 204 or status == 304 or 100 <= status < 200):
            raise ValueError("no Content-Length and not chunked")
        del buf[:pos]
        return status


@dataclass
class LoadResult:
    tool: str
    requests: int = 0  # responses received in the measured window, any status
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    non2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    late: int = 0  # paced runs: requests sent more than 5 ms after their slot
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "raw"}
        out["errors"] = self.errors
        return out


async def builtin_load(
    port: int, seconds: float, connections: int, rate: float | None = None, *, path: str
) -> LoadResult:
    """Closed loop (rate None): each connection sends its next request when the last is answered.
    Paced (rate set): request i is sent at start + i/rate by whichever connection is free."""
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies = array("d")
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    state = {"non2xx": 0, "slot": 0, "late": 0}
    live: set[_Conn] = set()
    start = time.perf_counter() + 0.05
    end = start + seconds

    async def worker() -> None:
        conn: _Conn | None = None
        try:
            while time.perf_counter() < end:
                if conn is None or conn.transport is None:
                    try:
                        _, conn = await loop.create_connection(_Conn, "127.0.0.1", port)
                    except OSError:
                        errors["connect"] += 1
                        conn = None
                        await asyncio.sleep(0.01)
                        continue
                    live.add(conn)
                if rate is not None:
                    slot = state["slot"]
                    state["slot"] += 1
                    at = start + slot / rate
                    if at >= end:
                        return
                    wait = at - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    elif wait < -0.005:
                        state["late"] += 1
                    if conn.transport is None:
                        continue
                fut: asyncio.Future[int] = loop.create_future()
                conn.waiter = fut
                conn.sent_at = sent = time.perf_counter()
                try:
                    conn.transport.write(request)
                except (OSError, AttributeError, RuntimeError):
                    errors["write"] += 1
                    live.discard(conn)
                    conn = None
                    continue
                try:
                    status = await fut
                except TimeoutError:
                    errors["timeout"] += 1
                    live.discard(conn)
                    conn = None
                    continue
                except ConnectionError:
                    errors["read"] += 1
                    live.discard(conn)
                    conn = None
                    continue
                done = time.perf_counter()
                if sent >= start and done <= end:
                    latencies.append(done - sent)
                    if not 200 <= status < 300:
                        state["non2xx"] += 1
                if not conn.keep_alive and conn.transport is not None:
                    conn.transport.close()
                    live.discard(conn)
                    conn = None
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.close()
            if conn is not None:
                live.discard(conn)

    async def watchdog() -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.perf_counter()
            for conn in list(live):
                waiter = conn.waiter
                if waiter is not None and not waiter.done() and now - conn.sent_at > REQUEST_TIMEOUT:
                    conn.timed_out = True
                    if conn.transport is not None:
                        conn.transport.abort()

    dog = asyncio.ensure_future(watchdog())
    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    try:
        await asyncio.wait(workers, timeout=seconds + REQUEST_TIMEOUT + 5)
    finally:
        for task in workers + [dog]:
            task.cancel()
        await asyncio.gather(*workers, dog, return_exceptions=True)
        for conn in list(live):
            if conn.transport is not None:
                conn.transport.abort()
    tool = f"built-in loader, paced at {rate:g} req/s" if rate else "built-in loader"
    res = LoadResult(tool=tool, requests=len(latencies), seconds=seconds)
    res.rps = len(latencies) / seconds
    res.p50_ms = percentile(latencies, 0.50) * 1000
    res.p99_ms = percentile(latencies, 0.99) * 1000
    res.non2xx = state["non2xx"]
    res.socket_errors = {k: v for k, v in errors.items() if v}
    res.late = state["late"]
    return res


# -- wrk ----------------------------------------------------------------------------------------


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(text: str, tool: str, seconds: float) -> LoadResult:
    res = LoadResult(tool=tool, seconds=seconds, raw=text)
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not m:
        raise RuntimeError("could not read Requests/sec from the output of wrk:\n" + text)
    res.rps = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if m:
        res.requests = int(m.group(1))
        res.seconds = _ms(m.group(2), m.group(3)) / 1000
    # wrk: "     50%    1.05ms"; wrk2: " 50.000%    1.05ms"
    for q, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{q}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if m:
            setattr(res, attr, _ms(m.group(1), m.group(2)))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        res.socket_errors = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        res.non2xx = int(m.group(1))
    return res
