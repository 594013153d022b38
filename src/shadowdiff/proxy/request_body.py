"""Request bodies: held whole only when they will be mirrored, streamed otherwise.

A body is needed twice only when its request is mirrored (the primary now, each
lane later), so only then is it held in memory, whole: when its method is mirrored,
it fits `mirror.max_body_bytes`, and there is room under `mirror.max_buffered_bytes`
(every request's held bodies together). Any other body is read up to 64 KiB before
the primary is contacted (so a slow client with a small body never holds a primary
connection: it gets its 408 without one), and past that streamed to the primary as
it arrives, chunk by chunk, under the upstream's flow control: a 10 MiB upload of a
method that is not mirrored costs the proxy a few chunks, not 10 MiB.

A body of unknown length (chunked) that would be mirrored is read up to
`mirror.max_body_bytes`; past that it is not mirrored (`body_too_large`) and the
part already read is streamed ahead of the rest. Running out of buffer room is
never the client's problem: the request is served, streamed, and not mirrored
(`buffer_full`). Whatever the path, `listen.request_timeout` bounds the whole body
(408) and `listen.max_request_body_bytes` its size (413); a body the parser rejects
is a 400.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from shadowdiff.buffers import BufferBudget
from shadowdiff.http import _aiohttp
from shadowdiff.http.client import BodyFailed
from shadowdiff.http.upstream import StreamedBody

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# What is read of a body that will not be mirrored before the primary is contacted: a
# body this small is sent whole; a larger one streams on from here.
PREFETCH_BYTES = 64 * 1024
# A body is taken from the client's buffer this much at a time: a chunk waiting for a
# slow primary holds this, not everything the connection had buffered (~480 KiB measured).
CHUNK_BYTES = 64 * 1024


@dataclass(slots=True)
class Received:
    """A request body as the handler goes on with it."""

    body: bytes  # the whole body when buffered; b"" when there is none or it is streamed
    stream: ClientBody | None  # set when the body goes to the primary as a stream
    skip: str | None  # a reason not to mirror found while reading (body_too_large, buffer_full)
    held: int  # budget bytes to give back once nothing needs the body any more


NO_BODY = Received(b"", None, None, 0)


class ClientBody:
    """The client's body as a `BodySource` for the primary: first what was already read,
    then the rest as it arrives, within the body's deadline and size limit."""

    __slots__ = ("chunked", "finished", "_request", "_pending", "_size", "_limit", "_deadline")

    def __init__(self, request: web.BaseRequest, *, already: list[bytes], limit: int, deadline: float) -> None:
        self.chunked = request.content_length is None
        self.finished = False  # the whole body has been handed over
        self._request = request
        self._pending = already
        self._size = sum(len(chunk) for chunk in already)
        self._limit = limit
        self._deadline = deadline

    @property
    def streamed(self) -> StreamedBody:
        return StreamedBody(self, self._request.content_length)

    async def read(self) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        chunk = await _next_chunk(self._request, self._deadline)
        self._size += len(chunk)
        if self._size > self._limit:
            raise BodyFailed(413, f"request body over {self._limit} bytes")
        if not chunk:
            self.finished = True
        return chunk


async def receive(
    request: web.BaseRequest, *, mirror: bool, mirror_limit: int, limit: int, timeout: float, budget: BufferBudget
) -> Received:
    """Read what must be read now: the whole body if it will be mirrored, else up to
    PREFETCH_BYTES of it.

    Raises BodyFailed (400, 408, 413, or no status: the client left) when the client's
    body fails while being read here.
    """
    if not request.body_exists:
        return NO_BODY
    if request.version == (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
        # curl waits a second for this otherwise; aiohttp's low-level server leaves it to us.
        await _aiohttp.write_interim(request, _CONTINUE)
    deadline = asyncio.get_running_loop().time() + timeout
    length = request.content_length
    skip = None
    if mirror and length is not None and length > mirror_limit:
        mirror, skip = False, "body_too_large"
    elif mirror and length is not None and not budget.take(length):
        mirror, skip = False, "buffer_full"
    if not mirror:
        return await _prefetched(request, skip, limit=limit, deadline=deadline)
    held = length or 0
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await _next_chunk(request, deadline):
            size += len(chunk)
            if size > limit:
                raise BodyFailed(413, f"request body over {limit} bytes")
            chunks.append(chunk)
            if length is not None:
                continue  # bounded by the declared length, already taken from the budget
            if size > mirror_limit or not budget.take(len(chunk)):
                # Not mirrored after all: what was read goes ahead of the rest, and its
                # room in the budget is given back at once (it is sent on in a moment).
                budget.give(held)
                reason = "body_too_large" if size > mirror_limit else "buffer_full"
                return Received(b"", ClientBody(request, already=chunks, limit=limit, deadline=deadline), reason, 0)
            held += len(chunk)
    except BaseException:
        budget.give(held)
        raise
    return Received(b"".join(chunks), None, None, held)


async def _prefetched(request: web.BaseRequest, skip: str | None, *, limit: int, deadline: float) -> Received:
    """A body that will not be mirrored: whole if it ends within PREFETCH_BYTES, else a stream."""
    chunks: list[bytes] = []
    size = 0
    while size < PREFETCH_BYTES:
        chunk = await _next_chunk(request, deadline)
        if not chunk:
            return Received(b"".join(chunks), None, skip, 0)
        size += len(chunk)
        if size > limit:
            raise BodyFailed(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return Received(b"", ClientBody(request, already=chunks, limit=limit, deadline=deadline), skip, 0)


async def _next_chunk(request: web.BaseRequest, deadline: float) -> bytes:
    try:
        async with asyncio.timeout_at(deadline):
            return await request.content.read(CHUNK_BYTES)
    except TimeoutError:  # a client trickling its body holds nothing past the deadline
        raise BodyFailed(408, "request body not received in time") from None
    except HttpProcessingError:  # bad chunk framing and the like
        raise BodyFailed(400, "malformed request body") from None  # the parser's message quotes the request
    except ConnectionError:  # aiohttp fails the body when the client's connection is lost
        raise BodyFailed(None, "the client left before its body was whole") from None
