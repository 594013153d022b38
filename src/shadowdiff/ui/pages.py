"""The UI's views, read from the same source as the API (the store, or the live statistics):
`/` the routes, `/route?name=ROUTE` one route's fields and samples, `/sample/{id}` one
sample side by side. Every view takes the API's range (`since=`, or `from`/`to`).

A view that cannot be drawn says why on a page of its own: 400 for a query it cannot
read, 404 for a route or sample it does not know, 503 when the store cannot be read
(logged as the API logs it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from shadowdiff import log
from shadowdiff.access import ANONYMOUS, SESSION_COOKIE, Access, Caller
from shadowdiff.control_api import CALLER
from shadowdiff.controls import Controls
from shadowdiff.sources import LiveSource, Range, RangeError, StoreSource
from shadowdiff.store.database import reason
from shadowdiff.ui import bodies, panel, rules, tables
from shadowdiff.ui.links import CHOICES, RANGE_KEYS, Links
from shadowdiff.ui.sparkline import sparkline
from shadowdiff.ui.templating import page

SAMPLES_LISTED = 50  # on a route's page; each one comes with its bodies
Source = LiveSource | StoreSource
T = TypeVar("T")


class PageError(Exception):
    """A view that cannot be drawn: the page that says so instead."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _frame(request: web.Request, source: Source | None, crumbs: list[tuple[str, str | None, bool]]) -> dict[str, Any]:
    """What every page's layout shows: the way back (label, link, whether the label is a route name),
    the range selector, the store."""
    query: Mapping[str, str] = request.query
    try:
        Range.parse(query)
    except RangeError:  # the error page's links go where the range is readable
        query = {key: value for key, value in query.items() if key not in RANGE_KEYS}
    links = Links(query)
    stored = source is not None and source.stored
    label = query.get("since") or ("custom" if query.get("from") or query.get("to") else "all")
    ranges = [(choice, links.with_range(request.path, choice), choice == label) for choice in CHOICES] if stored else []
    other = None if label in CHOICES else label  # a since= of its own, or from/to
    return {
        "links": links, "crumbs": crumbs, "stored": stored, "ranges": ranges, "range_other": other, "fleet": None,
        "whole_range": label == "all" or not stored, "all_href": links.with_range(request.path, "all"),
    }  # fmt: skip


def _span(request: web.Request) -> Range:
    try:
        return Range.parse(request.query)
    except RangeError as exc:
        raise PageError(400, "This time range cannot be read", str(exc)) from None


def _fleet(view: dict[str, Any]) -> dict[str, Any]:
    return {"store": view.get("store"), "instances": view.get("instances", [])}


async def _read(request: web.Request, read: Awaitable[T]) -> T:
    """What the source answers; a store that is down or locked is a 503 page (the proxy is unaffected)."""
    try:
        return await read
    except Exception as exc:
        log.event("warning", "store_read_failed", path=request.path, error=reason(exc))
        raise PageError(503, "The store cannot be read right now", f"{reason(exc)}; clients are still served") from None


class Pages:
    def __init__(self, source: Source | None, controls: Controls | None = None, access: Access | None = None) -> None:
        self.source = source
        self.controls = controls
        self.access = access or Access([])

    def frame(
        self, request: web.Request, crumbs: list[tuple[str, str | None, bool]], *, caller: Caller | None = None,
        bare: bool = False,
    ) -> dict[str, Any]:
        """The layout's context: `_frame`'s, the header's state and who is asking (`caller`: the access
        middleware's unless given), and on / the controls panel; `bare` leaves out the range selector."""
        frame = _frame(request, self.source, crumbs)
        caller = caller or request.get(CALLER) or Caller(None, ANONYMOUS)
        state = self.controls.state() if self.controls is not None else None
        signed_in = SESSION_COOKIE in request.cookies
        frame["header"] = panel.header(state, self.access, caller, signed_in=signed_in, here=request.path_qs)
        shown = state is not None and request.path == "/" and not bare and self.access.may_read(caller)
        frame["panel"] = panel.panel(state, self.access, caller, here=request.path_qs) if shown else None
        frame["bare"] = bare
        return frame

    def _source(self) -> Source:
        if self.source is None:
            raise PageError(503, "Noise detection is not running", "this admin listener has no statistics to show")
        return self.source

    def guarded(self, view: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """`view`, its failures drawn as error pages."""

        async def handler(request: web.Request) -> web.Response:
            try:
                return await view(request)
            except PageError as exc:
                return await page("error.html", exc.status, **self.frame(request, [(exc.title, None, False)]), error=exc)

        return handler

    async def routes(self, request: web.Request) -> web.Response:
        source = self._source()
        view = await _read(request, source.routes(_span(request)))
        key = request.query.get("sort", tables.DEFAULT_SORT)
        key = key if key in tables.SORTS else tables.DEFAULT_SORT
        natural = tables.SORTS[key][1]
        descending = {"asc": False, "desc": True}.get(request.query.get("dir", ""), natural)
        rows = tables.ordered(tables.route_rows(view), key, descending)
        frame = self.frame(request, [])
        links: Links = frame["links"]
        headers = {}
        for column, (_, column_natural) in tables.SORTS.items():
            flip = column == key and descending == column_natural
            direction = ("asc" if column_natural else "desc") if flip else None
            headers[column] = {
                "href": links.here("/", sort=column, dir=direction),
                "sort": ("descending" if descending else "ascending") if column == key else None,
            }
        step = int(view.get("trend_step") or 60)
        sparks = {r.route: sparkline(r.trend, label=f"mismatch rate per {_duration(step)}", floor=0.01) for r in rows}
        compared, mismatch = sum(r.compared for r in rows), sum(r.mismatch for r in rows)
        totals = {
            "routes": len(rows), "compared": compared, "mismatch": mismatch, "mismatch_rate": tables.rate(mismatch, compared),
            "regression": sum(r.regression for r in rows), "undecided": sum(r.undecided for r in rows),
            "shadow_error": sum(r.shadow_error for r in rows), "noise": sum(r.noise for r in rows),
        }  # fmt: skip
        frame["fleet"] = _fleet(view)
        return await page(
            "routes.html", **frame, rows=rows, sparks=sparks, columns=headers, totals=totals, view=view,
            history=any(r.trend for r in rows),
        )  # fmt: skip

    async def route(self, request: web.Request) -> web.Response:
        source = self._source()
        name = request.query.get("name")
        if not name:
            raise PageError(400, "Which route?", "say which route: /route?name=/orders/{id} (the routes page lists them)")
        span = _span(request)
        view = await _read(request, source.fields(name, span, None))
        if view is None:
            raise PageError(404, "No such route", f"no comparisons seen on route {name!r} in this range yet")
        overview = await _read(request, source.routes(span))
        row = next((r for r in tables.route_rows(overview) if r.route == name), None)
        step, route_step = int(view.get("trend_step") or 60), int(overview.get("trend_step") or 60)
        path = request.query.get("path")
        part = request.query.get("part") if path else None
        found = await _read(request, source.samples(name, part, path, SAMPLES_LISTED, span, summary=True))
        changed, noise = tables.split_fields(view["fields"])
        sparks = {
            (f["part"], f["path"]): sparkline(f.get("trend", []), label=f"differences per {_duration(step)}") for f in view["fields"]
        }
        trend = None
        if row is not None and row.trend:
            trend = sparkline(row.trend, label=f"mismatch rate per {_duration(route_step)}", floor=0.01, width=300)
        frame = self.frame(request, [(name, None, True)])
        frame["fleet"] = _fleet(overview)
        return await page(
            "route.html", **frame, name=name, view=view, row=row, changed=changed, noise=noise, sparks=sparks, trend=trend,
            samples=None if found is None else [_listed(s) for s in found], part=part, path=path,
            history="trend_step" in view, listed=SAMPLES_LISTED,
        )  # fmt: skip

    async def sample(self, request: web.Request) -> web.Response:
        source = self._source()
        raw = request.match_info["id"]
        if not source.stored:
            raise PageError(503, "Samples need the store", "samples are kept in the store, and it is off: set store.enabled: true")
        if not raw.isdigit() or len(raw) > 18:
            raise PageError(400, "Not a sample id", f"a sample id is a whole number, got {raw[:40]!r}")
        span = _span(request)
        sample = await _read(request, source.sample(int(raw)))
        if sample is None:
            raise PageError(404, "No such sample", f"no sample {raw} (retention may have deleted it)")
        view = await _read(request, source.fields(sample["route"], span, None))
        back = Links(request.query).to("/route", name=sample["route"])
        frame = self.frame(request, [(sample["route"], back, True), (f"Sample {raw}", None, False)])
        return await page(
            "sample.html", **frame, sample=sample, sides=await asyncio.to_thread(_sides, sample),
            status_differs=any(d["part"] == "status" for d in sample["differences"]),
            request_body=await asyncio.to_thread(bodies.shown, sample["request"]["body"], [], None),
            suggestions=rules.suggestions(sample, view["fields"] if view else []),
        )  # fmt: skip


def _sides(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each answer of a sample with its body drawn (off the loop: a body may be a megabyte) and its
    differing headers flagged."""
    differences = sample["differences"]
    changed_headers = {d["path"].partition(":")[0] for d in differences if d["part"] == "header"}
    out = {}
    for side in ("primary", "shadow"):
        headers = [(n, v, n.lower() in changed_headers) for n, v in sample[side]["headers"]]
        out[side] = {
            "answer": sample[side], "body": bodies.shown(sample[side]["body"], differences, side),
            "headers": headers, "headers_differ": any(differs for _, _, differs in headers),
        }  # fmt: skip
    return out


def _listed(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample's summary as the route page lists it."""
    paths = list(dict.fromkeys(f"{d['part']} {d['path']}" if d["part"] != "body" else d["path"] for d in sample["differences"]))
    return {
        "id": sample["id"], "seen": sample["seen"], "method": sample["method"], "target": sample["target"],
        "outcome": sample["outcome"], "paths": paths, "status": tuple(sample["status"]),
    }  # fmt: skip


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
