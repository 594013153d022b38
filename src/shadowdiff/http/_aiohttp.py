"""Every use of aiohttp's private surface, in one place.

shadowdiff relies on a few aiohttp internals that its public API does not offer: the
client protocol and header serializer (for the lean pooled client), two hooks of the
low-level server (for the connection cap), three of StreamResponse (for a relayed
response that adds nothing), and the writer's byte count (for `100 Continue`). They
are named here and nowhere else, and `tests/http/test_aiohttp_contract.py` checks
each one (names, signatures, attributes) against the installed aiohttp, so an
aiohttp that changed them fails loudly in the suite, not quietly in production.
pyproject.toml pins a compatible range (`aiohttp~=3.14.5`) for the same reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage
from aiohttp.http_writer import _serialize_headers
from aiohttp.streams import StreamReader
from multidict import CIMultiDict

__all__ = [
    "ClientProtocol", "RawResponseMessage", "RelayedResponse", "Server", "StreamReader",
    "drain", "has_answer", "head_too_large", "serialize_head", "write_interim",
]  # fmt: skip

# -- the client side -------------------------------------------------------------


class ClientProtocol(ResponseHandler):
    """aiohttp's client protocol (with the C llhttp parser and read timeouts), remembering
    how its response parser was set up, and whether the upstream sent anything while the
    connection sat idle in the pool (it is then never reused: those bytes would be taken
    for the start of the next answer)."""

    skip_payload: bool | None = None  # None: no parser yet
    applied_timeout: float | None = None  # the read timeout last given to the parser
    idle = False
    spoke_while_idle = False

    def data_received(self, data: bytes) -> None:
        if self.idle:
            self.spoke_while_idle = True
        super().data_received(data)


# serialize_head(request_line, headers) -> bytes: a request head as aiohttp's client writes
# it; refuses CR, LF and NUL in headers (ValueError). Bound, not wrapped: it runs per request.
serialize_head = _serialize_headers


async def drain(protocol: ClientProtocol) -> None:
    """Wait until the transport's write buffer is under its high-water mark again."""
    await protocol._drain_helper()


def has_answer(protocol: ClientProtocol) -> bool:
    """Whether a final response head (not a 1xx) or an error is already waiting to be read.

    Reads the protocol's queue of parsed (message, payload) pairs, DataQueue._buffer.
    """
    if protocol.exception() is not None:
        return True
    for (message, _payload), _size in protocol._buffer:
        if message.code >= 200 or message.code == 101:
            return True
    return False


def head_too_large(exc: BaseException) -> bool:
    """A response head past the parser's limits: LineTooLong's or the header count's text,
    kept when aiohttp re-raises it as its base class (client protocol) or as
    ClientResponseError (WebSockets)."""
    message = str(getattr(exc, "message", "") or "")
    return "Got more than" in message or "Too many headers" in message


# -- the server side -------------------------------------------------------------


class Server(web.Server):
    """aiohttp's low-level server with two hooks of its protocol factory.

    `admit()` is asked for each new connection, before aiohttp builds its handler;
    returning a protocol instead (a refusal) keeps aiohttp out of it entirely.
    `released()` runs when an admitted connection is gone.
    """

    def admit(self) -> asyncio.BaseProtocol | None:
        return None

    def released(self) -> None:
        pass

    def __call__(self) -> Any:
        refusal = self.admit()
        if refusal is not None:
            return refusal
        return super().__call__()

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        self.released()
        super().connection_lost(handler, exc)


class RelayedResponse(web.StreamResponse):
    """A StreamResponse that takes over a prepared header collection (no copy), may write
    its head with the first body chunk, and lets a subclass undo what aiohttp adds to
    the head (`adjust_headers`, called right after aiohttp's own header preparation)."""

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str], head_alone: bool) -> None:
        super().__init__(status=status, reason=reason)
        # aiohttp's switch: write the head at prepare(), or with the first body chunk.
        self._send_headers_immediately = head_alone
        self._headers = headers  # taken over, not copied: it was built for this response

    def adjust_headers(self, headers: CIMultiDict[str]) -> None:
        pass

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.adjust_headers(self.headers)


async def write_interim(request: web.BaseRequest, head: bytes) -> None:
    """Write an interim (1xx) answer before the real one, which then starts afresh:
    aiohttp's low-level server leaves `100 Continue` to the handler."""
    await request.writer.write(head)
    request.writer.output_size = 0
