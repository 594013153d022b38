"""Streaming the primary's answer to the client, and observing it for the experiment."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from shadowdiff.experiment.mirror import Experiment
from shadowdiff.http import forwarding as hdr
from shadowdiff.http.client import Response
from shadowdiff.http.errors import classify, describe
from shadowdiff.model import CONTROL, BodyCapture, Observation
from shadowdiff.proxy.response import ProxyResponse

# A write this small to a client with nothing queued stays under the transport's
# high-water mark (64 KiB in asyncio and uvloop), so it cannot pause for drain.
_UNBLOCKED_WRITE = 16 * 1024


async def relay(
    request: web.BaseRequest,
    upstream: Response,
    *,
    started: float,
    head_elapsed: float,
    experiment: Experiment | None,
    capture_limit: int,
    idle_timeout: float,
    close: bool,
) -> tuple[web.StreamResponse | None, Observation | None]:
    """Stream the primary's answer to the client; observe it if an experiment waits.

    A None response means the head could not be relayed at all (the caller answers
    502 instead). A None observation means the client left: nothing to compare.
    The capture stops at the first chunk after the experiment gave up waiting.
    """
    reader = upstream.content
    response = ProxyResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=hdr.response_headers(hdr.decoded(upstream.raw_headers), version=tuple(request.version)),
        # Head and body in one write when the body (or its end) is already here; a
        # primary still silent after its head (an event stream) has its head relayed at once.
        head_alone=not (reader.total_bytes or reader.is_eof()),
    )
    if close:
        response.force_close()
    capture = BodyCapture(capture_limit, experiment.account) if experiment is not None else None
    try:
        await response.prepare(request)
    except ConnectionError:
        return response, None  # the client left before the answer
    except ValueError as exc:  # control characters in a header: aiohttp refuses to write them
        return None, Observation(CONTROL, time.perf_counter() - started, head_elapsed, error="protocol", detail=describe(exc))
    transport = request.transport
    if transport is None:
        return response, None  # the client left before the answer
    whole: float | None = None  # when the last byte came from the primary, before it was written on
    while True:
        try:
            chunk = await reader.readany()
        except Exception as exc:  # the primary broke mid-body: never end it as complete
            abort(request)
            return response, Observation(
                CONTROL, time.perf_counter() - started, head_elapsed, error=classify(exc), detail=describe(exc)
            )
        if not chunk:
            break
        if reader.is_eof():
            whole = time.perf_counter()
        if capture is not None:
            if experiment is not None and experiment.wanted:
                capture.feed(chunk)
            else:
                capture = None  # given up: nothing more is kept or hashed
        try:
            if len(chunk) <= _UNBLOCKED_WRITE and not transport.get_write_buffer_size():
                # Nothing queued for the client, and this chunk is under the transport's
                # pause mark: the write cannot wait, so no timer is needed.
                await response.write(chunk)
            else:
                # A client that stops reading would hold this connection and the
                # primary's for ever: past idle_timeout without progress it is cut.
                async with asyncio.timeout(idle_timeout):
                    await response.write(chunk)
        except ConnectionError:
            return response, None  # the client left mid-body: nothing to compare
        except TimeoutError:
            abort(request)
            return response, None
    observation = Observation(
        CONTROL,
        (whole or time.perf_counter()) - started,  # upstream-side, like every lane's: no client back-pressure
        head_elapsed,
        status=upstream.status,
        reason=upstream.reason or "",
        headers=upstream.headers,
        body=capture.result() if capture is not None else None,
    )
    return response, observation


def abort(request: web.BaseRequest) -> None:
    """Cut the client's connection so a short body is never taken as complete."""
    transport = request.transport
    if transport is not None:
        transport.abort()
