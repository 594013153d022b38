"""The UI's links: a range that travels, another range swapped in, route names left readable."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from shadowdiff.ui.links import Links, href


def test_links_keep_the_range_and_drop_the_rest() -> None:
    """to() carries since/from/to and nothing else of the page's query."""
    links = Links({"since": "1h", "sort": "route", "name": "/x"})
    assert links.to("/route", name="/users/{id}") == "/route?name=/users/{id}&since=1h"
    assert Links({"from": "100", "to": "200"}).to("/") == "/?from=100&to=200"


def test_another_range_keeps_the_rest_of_the_page() -> None:
    """with_range() swaps the range and keeps the page's other keys; all is no range at all."""
    links = Links({"from": "100", "to": "200", "name": "/users/{id}"})
    assert links.with_range("/route", "15m") == "/route?name=/users/{id}&since=15m"
    assert links.with_range("/route", "all") == "/route?name=/users/{id}"


def test_names_stay_readable_and_still_round_trip() -> None:
    """Slashes, braces and $ stay as they are; &, #, spaces, quotes and markup are encoded, and the
    query parses back to the same values."""
    name, path = "/a b/{id}&x=<y>#", "$['odd key'][0]"
    url = href("/route", {"name": name, "path": path, "none": None})
    assert url.startswith("/route?name=/a%20b/{id}%26x%3D%3Cy%3E%23&path=$%5B%27odd")
    assert parse_qs(urlsplit(url).query) == {"name": [name], "path": [path]}


def test_here_changes_one_key() -> None:
    """here() keeps the page's query, with changes (None removes a key)."""
    links = Links({"name": "/x", "path": "$.a", "since": "1h"})
    assert links.here("/route", path=None) == "/route?name=/x&since=1h"
