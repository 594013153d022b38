"""The admin listener's web UI: server-rendered pages over the API's source, the live controls
for an operator, a sign-in form for when the admin listener has tokens, a stylesheet and a
script, all served from the package (nothing fetched from anywhere else)."""

from __future__ import annotations

from aiohttp import web

from shadowdiff.access import Access
from shadowdiff.controls import Controls
from shadowdiff.sources import LiveSource, StoreSource
from shadowdiff.ui.pages import Pages
from shadowdiff.ui.panel import SIGN_IN, SIGN_OUT
from shadowdiff.ui.signin import SignIn
from shadowdiff.ui.templating import static


def add_routes(
    app: web.Application,
    source: LiveSource | StoreSource | None,
    *,
    controls: Controls | None = None,
    access: Access | None = None,
) -> None:
    """Mount `/`, `/route`, `/sample/{id}`, the sign-in form (`/ui/sign-in`, `/ui/sign-out`) and
    `/ui/{name}` (the CSS and JS) on the admin app. `controls`: the live settings the routes page
    shows (and lets an operator change through the API); `access`: who is who (everything open
    without it). Also puts, in front of the app's middlewares (so before its access check), the
    one that answers a refused read of a page with a page linking to the sign-in form."""
    pages = Pages(source, controls, access)
    signing = SignIn(pages.access, pages.frame)
    app.middlewares.insert(0, signing.prompt())
    app.router.add_get("/", pages.guarded(pages.routes))
    app.router.add_get("/route", pages.guarded(pages.route))
    app.router.add_get("/sample/{id}", pages.guarded(pages.sample))
    app.router.add_get(SIGN_IN, signing.form)
    app.router.add_post(SIGN_IN, signing.sign_in)
    app.router.add_post(SIGN_OUT, signing.sign_out)
    app.router.add_get("/ui/{name}", static)
