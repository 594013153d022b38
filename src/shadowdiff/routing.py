"""Path -> bounded route template, the `route` label on every metric and log line.

The first configured template that matches wins (`/users/{id}` matches
`/users/42`). Otherwise ids are collapsed automatically (numbers, UUIDs, long
hex, long opaque tokens become `{id}`, keeping a file extension: `/rows/7.json` is
`/rows/{id}.json`), and once `max_routes` distinct routes
have been seen, any new one is reported as `other`: a scanner walking random
paths cannot create unbounded series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DEFAULT_MAX_ROUTES = 200
OTHER = "other"
_MAX_ROUTE_CHARS = 200
CACHED_PATHS = 4096

_ID_SEGMENT = re.compile(
    r"""^(?:
        [0-9]+                                                   # 42
      | [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}  # UUID
      | [0-9a-fA-F]{16,}                                         # long hex: digests, object ids
    )$""",
    re.VERBOSE,
)
_TOKEN_SEGMENT = re.compile(r"^[A-Za-z0-9_\-.~=+]{20,}$")
_PLACEHOLDER = re.compile(r"\{[^/{}]+\}")


_EXTENSION = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")  # json, csv, png, tar: a letter first (not `1.2`)


def _segment(segment: str) -> str:
    """`{id}` for an id, `{id}.json` for an id with a file extension (`/rows/123.json`), else itself."""
    stem, dot, extension = segment.rpartition(".")
    if dot and stem and _EXTENSION.match(extension) and _is_id(stem):
        return "{id}." + extension
    return "{id}" if _is_id(segment) else segment


def _is_id(segment: str) -> bool:
    if _ID_SEGMENT.match(segment):
        return True
    # A long opaque token mixes digits in; a long word (`configuration-settings`) does not.
    return bool(_TOKEN_SEGMENT.match(segment)) and any(c.isdigit() for c in segment)


def collapse(path: str) -> str:
    """`/users/42/orders/9f1c...` -> `/users/{id}/orders/{id}` (`/rows/7.json` -> `/rows/{id}.json`); characters that are not
    printable (control characters, raw or %-decoded, zero-width ones) escaped as `\\x1b`."""
    route = "/".join(_segment(segment) for segment in path.split("/"))
    return route if route.isprintable() else "".join(_printable(c) for c in route)


def _printable(char: str) -> str:
    return char if char.isprintable() else char.encode("unicode_escape", "backslashreplace").decode("ascii")


def _compile(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in parts) + "$")


class RouteTable:
    def __init__(self, templates: Iterable[str] = (), max_routes: int = DEFAULT_MAX_ROUTES) -> None:
        self._templates = [(template, _compile(template)) for template in templates]
        self._max_routes = max_routes
        self._seen: set[str] = set()
        # path -> route. Exact: a path's route never changes once given (templates are
        # fixed, seen routes stay seen, and past the cap every new route is `other`).
        self._cache: dict[str, str] = {}

    @property
    def cached_paths(self) -> int:
        """Paths whose route is remembered right now (at most 4096)."""
        return len(self._cache)

    def route(self, path: str) -> str:
        """The bounded route label for a request path (no query string)."""
        route = self._cache.get(path)
        if route is None:
            if len(self._cache) >= CACHED_PATHS:
                self._cache.clear()  # bounded: random paths cannot grow it
            route = self._cache[path] = self._route(path)
        return route

    def _route(self, path: str) -> str:
        for template, pattern in self._templates:
            if pattern.match(path):
                return template
        route = collapse(path)
        if route in self._seen:
            return route
        if len(self._seen) >= self._max_routes or len(route) > _MAX_ROUTE_CHARS:
            return OTHER
        self._seen.add(route)
        return route
