"""The UI's URLs: every view is a GET with its state in the query, so a link pasted into an
incident opens the same view. The time range (`since`, or `from`/`to`) travels in every link."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

RANGE_KEYS = ("since", "from", "to")
CHOICES = ("15m", "1h", "24h", "7d", "all")  # the range selector; "all" is no range at all
# Route names and paths stay readable in the address bar: /route?name=/users/{id}&path=$.plan
_READABLE = "/{}$*:@,"


def kept_range(query: Mapping[str, str]) -> dict[str, str]:
    """The range keys of a request's query, to carry into the links of its page."""
    return {key: query[key] for key in RANGE_KEYS if query.get(key)}


def href(path: str, params: Mapping[str, str | None]) -> str:
    """`path` with `params` (None values left out) as its query."""
    given = {key: value for key, value in params.items() if value is not None}
    if not given:
        return path
    return path + "?" + urlencode(given, quote_via=quote, safe=_READABLE)


class Links:
    """The links of one page: `to()` keeps the page's range, `with_range()` swaps it for another."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.range = kept_range(query)
        self._query = dict(query)

    def to(self, where: str, /, **params: str | None) -> str:
        return href(where, {**params, **self.range})

    def with_range(self, where: str, choice: str) -> str:
        """This page (`where`, with its query) over another range (`choice`, one of CHOICES)."""
        rest = {key: value for key, value in self._query.items() if key not in RANGE_KEYS}
        return href(where, {**rest, "since": None if choice == "all" else choice})

    def here(self, where: str, /, **changes: str | None) -> str:
        """This page (`where`, with its query) with some of the query changed (a None removes a key)."""
        return href(where, {**self._query, **changes})
