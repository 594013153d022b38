"""The admin listener's web UI: server-rendered pages over the API's source, a stylesheet and a
script for the copy buttons, all served from the package (nothing fetched from anywhere else)."""

from __future__ import annotations

from aiohttp import web

from shadowdiff.sources import LiveSource, StoreSource
from shadowdiff.ui.pages import Pages
from shadowdiff.ui.templating import static


def add_routes(app: web.Application, source: LiveSource | StoreSource | None) -> None:
    """Mount `/`, `/route`, `/sample/{id}` and `/ui/{name}` (their CSS and JS) on the admin app."""
    pages = Pages(source)
    app.router.add_get("/", pages.guarded(pages.routes))
    app.router.add_get("/route", pages.guarded(pages.route))
    app.router.add_get("/sample/{id}", pages.guarded(pages.sample))
    app.router.add_get("/ui/{name}", static)
