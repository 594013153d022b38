"""Real loopback backends for the tests: a scriptable HTTP app and raw-socket misfits."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

FIXED_DATE = "Sat, 21 Nov 2026 00:00:00 GMT"
LARGE_CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


@dataclass
class Seen:
    """One request as a backend received it."""

    method: str
    raw_path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def has(self, name: str) -> bool:
        return any(k.lower() == name.lower() for k, _ in self.headers)


@dataclass
class Backend:
    """An aiohttp app on 127.0.0.1 that records every request it receives."""

    name: str
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Backend:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.on_response_prepare.append(_fixed_date)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Generous limits of its own, so the proxy's are the ones a test meets.
        self._runner, self.url = await serve_app(
            app, auto_decompress=False, max_headers=1024, max_line_size=1 << 17, max_field_size=1 << 17
        )
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.raw_path, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers], body)
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        name = request.path.strip("/").split("/")[0]
        handler = getattr(self, f"route_{name.replace('-', '_')}", None)
        if handler is None:
            return web.json_response({"path": request.path, "query": request.query_string})
        return await handler(request, body)

    async def route_whoami(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """Differs between backends: a body mismatch on purpose."""
        return web.json_response({"backend": self.name})

    async def route_gzip(self, request: web.Request, body: bytes) -> web.StreamResponse:
        payload = gzip.compress(b'{"hello": "world", "n": 1}' * 50, mtime=0)
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def route_redirect(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/landing"}, text="moved")

    async def route_cookies(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.Response(text="cookies")
        response.headers.add("Set-Cookie", "session=abc; Path=/; HttpOnly")
        response.headers.add("Set-Cookie", "theme=dark; Path=/")
        response.headers.add("Set-Cookie", "lang=en; Path=/")
        return response

    async def route_echo(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"method": request.method, "raw_path": request.raw_path, "body": body.decode("latin-1")})

    async def route_chunked(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(20):
            await response.write(f"chunk {i}\n".encode())
        await response.write_eof()
        return response

    async def route_large(self, request: web.Request, body: bytes) -> web.StreamResponse:
        size = int(request.query.get("size", str(1024 * 1024)))
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        sent = size if request.method == "HEAD" else 0  # aiohttp would send body bytes after a HEAD head
        while sent < size:
            piece = LARGE_CHUNK[: min(len(LARGE_CHUNK), size - sent)]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
        return response

    async def route_status(self, request: web.Request, body: bytes) -> web.StreamResponse:
        code = int(request.path.split("/")[2])
        headers = {"ETag": '"v1"'}
        if code == 304:
            headers["Content-Length"] = "1234"
        return web.Response(status=code, headers=headers)

    async def route_hop(self, request: web.Request, body: bytes) -> web.StreamResponse:
        headers = {
            "Connection": "X-Backend-Private, keep-alive",
            "X-Backend-Private": "secret-for-this-hop",
            "Keep-Alive": "timeout=5",
            "Proxy-Authenticate": "Basic",
            "Trailer": "X-Checksum",
            "X-End-To-End": "kept",
        }
        return web.Response(text="hop", headers=headers)


class ScriptedBackend:
    """A loopback server that counts connections and answers each request by a script.

    `answer(connection_number, request_number_on_it)` returns the bytes to send, or
    None to close the connection without answering.
    """

    def __init__(self, answer: Callable[[int, int], bytes | None]) -> None:
        self.answer = answer
        self.close_after_answer = False
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> ScriptedBackend:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, served = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                served += 1
                self.heads.append(head)
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                    0,
                )
                self.bodies.append(await reader.readexactly(length) if length else b"")
                answer = self.answer(number, served)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class RawBackend(ScriptedBackend):
    """Answers every request with the same raw bytes: full control of the response head."""

    def __init__(self, response: bytes) -> None:
        super().__init__(lambda connection, request: response)


async def serve_app(app: web.Application, **runner_options: object) -> tuple[web.AppRunner, str]:
    """Serve `app` on an ephemeral loopback port: (runner to clean up, base URL)."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _fixed_date(request: web.Request, response: web.StreamResponse) -> None:
    # A constant Date makes a direct answer and a proxied one comparable byte for byte.
    response.headers["Date"] = FIXED_DATE


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
