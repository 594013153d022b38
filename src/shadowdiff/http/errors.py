"""How an upstream exchange fails: one kind per failure (a metric label), and a short
text for logs.

`classify()` maps whatever the client side raised to one of `model.ERROR_KINDS`;
`describe()` gives a one-line text with URL query strings (where tokens live)
removed. `UpstreamError` carries both, raised by `Upstream.open()`.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
from aiohttp import http_exceptions

from shadowdiff.http._aiohttp import head_too_large
from shadowdiff.http.client import ConnectFailed


class UpstreamError(Exception):
    """An upstream gave no usable response. `kind` is one of model.ERROR_KINDS."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def classify(exc: BaseException) -> str:
    """Map a client-side exception to an error kind."""
    if isinstance(exc, ConnectFailed):
        return "connect"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect"  # never connected: the upstream is down or black-holed
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, (aiohttp.ClientResponseError, http_exceptions.HttpProcessingError)) and head_too_large(exc):
        return "too_large"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__ or (exc.args[0] if exc.args else None)
        if isinstance(cause, http_exceptions.TransferEncodingError) or "TransferEncodingError" in str(exc):
            return "protocol"
        return "reset"  # the body stopped short
    if isinstance(exc, (aiohttp.ServerDisconnectedError, ConnectionError)):
        return "reset"
    if isinstance(exc, (aiohttp.ClientResponseError, http_exceptions.HttpProcessingError)):
        return "protocol"
    if isinstance(exc, OSError):
        return "reset"
    return "protocol"


_QUERY = re.compile(r"(https?://[^\s'\"?#]*)[?#][^\s'\"]*")


def describe(exc: BaseException) -> str:
    """A short error text for logs: query strings (tokens live there) removed."""
    text = _QUERY.sub(r"\1?...", str(exc) or type(exc).__name__)
    return text if len(text) <= 200 else text[:197] + "..."
