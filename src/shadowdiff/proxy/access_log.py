"""The traffic port's access log (`logging.access_log: true`): one JSON line per answer.

The target and the Referer go through the publish pipeline's redactor (query
parameters with secret names, tokens, userinfo hidden; cut; controls escaped), as
does the User-Agent: the access log writes nothing the mismatch log would not.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from shadowdiff import log
from shadowdiff.publish.redact import Redactor


class _AccessLog(AbstractAccessLogger):
    redactor: Callable[[], Redactor]

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        redactor = self.redactor()
        headers = request.headers
        log.event(
            "info",
            "access",
            remote=request.remote,
            method=redactor.cut(request.method),
            target=redactor.url(request.raw_path),
            version=f"{request.version.major}.{request.version.minor}",
            status=response.status,
            bytes=response.body_length,
            ms=round(time * 1000, 3),
            referer=redactor.url(headers["Referer"]) if "Referer" in headers else None,
            user_agent=redactor.text(headers["User-Agent"]) if "User-Agent" in headers else None,
        )


def access_log_class(redactor: Callable[[], Redactor]) -> type[AbstractAccessLogger]:
    """An access logger class for aiohttp's server that reads the current redactor at each line."""
    return type("AccessLog", (_AccessLog,), {"redactor": staticmethod(redactor)})
