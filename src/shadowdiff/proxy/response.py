"""What the client gets: the primary's answer relayed unchanged, or the proxy's own short one."""

from __future__ import annotations

from http import HTTPStatus

from multidict import CIMultiDict

from shadowdiff.http import _aiohttp

# A primary that timed out is a 504; every other failure to answer is a 502.
_GATEWAY_STATUS = {"timeout": 504}


class ProxyResponse(_aiohttp.RelayedResponse):
    """A response that adds nothing to the primary's headers.

    aiohttp fills in Date, Server and a default Content-Type, and drops
    Content-Length from 304 answers. For a relayed response those would be changes
    the primary never made, so they are undone right after aiohttp's header
    preparation (pinned by the transparency tests).
    """

    _DEFAULTED = ("Date", "Server", "Content-Type")

    def __init__(self, *, status: int, reason: str | None, headers: CIMultiDict[str], head_alone: bool = True) -> None:
        super().__init__(status=status, reason=reason, headers=headers, head_alone=head_alone)
        # Only what is needed to undo aiohttp's changes, not a copy of every header.
        self._absent = [name for name in self._DEFAULTED if name not in headers]
        self._content_length = headers.get("Content-Length")

    def adjust_headers(self, headers: CIMultiDict[str]) -> None:
        for name in self._absent:
            headers.popall(name, None)
        if self.status == 304 and self._content_length is not None and "Content-Length" not in headers:
            headers["Content-Length"] = self._content_length


def plain_response(status: int, text: str, *, close: bool = False) -> _aiohttp.OwnResponse:
    """The proxy's own answer (errors, refusals): short plain text, no `Server` header.

    `text` is the proxy's own words: never a request's line, header values, or an
    exception message that could carry them.
    """
    response = _aiohttp.OwnResponse(status=status, text=text + "\n", content_type="text/plain")
    if close:
        response.force_close()
    return response


# What the proxy says when it refuses a request before any handler could (parser
# rejections, a head too large or too slow, a handler failure).
_OWN_TEXT = {
    400: "bad request",
    408: "request head not received in time",
    431: "request head too large",
    500: "internal proxy error",
    503: "proxy at its connection limit",
    504: "proxy timed out",
}


def error_page(status: int) -> _aiohttp.OwnResponse:
    """The proxy's own answer for a refusal with `status`, closing the connection."""
    return plain_response(status, _OWN_TEXT.get(status, "request refused"), close=True)


def raw_answer(status: int) -> bytes:
    """The proxy's own closing answer for `status` as bytes, for a connection no aiohttp handler serves."""
    body = (_OWN_TEXT[status] + "\n").encode()
    reason = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def gateway_status(kind: str) -> int:
    """The status for a primary that gave no answer head: 504 for a timeout, else 502."""
    return _GATEWAY_STATUS.get(kind, 502)


def gateway_text(kind: str) -> str:
    return f"primary upstream failed: {kind}"
