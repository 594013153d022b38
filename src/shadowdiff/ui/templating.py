"""The UI's HTML: Jinja2 templates (autoescaped: route names, headers and bodies come from
clients and backends), the filters that format numbers, and the headers every page carries.

The Content-Security-Policy allows this origin alone, with no inline script or style: the
UI works air-gapped, and a value that slipped past escaping could still run nothing.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
STATIC = {"app.css": "text/css", "app.js": "text/javascript"}


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0%"
    if value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%"


def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def millis(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def fraction(value: float | None) -> str:
    """A rate from 0 to 1 as the controls take it: `0.5`, `1`, `0.00001` (never an exponent)."""
    if value is None:
        return "—"
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def when(text: str | None) -> str:
    """An ISO 8601 UTC instant as `2026-12-04 18:56:24 UTC`."""
    if not text:
        return "—"
    return text.replace("T", " ").replace("Z", "").partition(".")[0] + " UTC"


def value(item: Any, limit: int = 160) -> str:
    """A difference's value as JSON, cut to `limit` characters (absent: —)."""
    if item is None:
        return "—"
    text = json.dumps(item, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("shadowdiff.ui", "templates"), autoescape=True, undefined=StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters.update(percent=percent, count=count, millis=millis, when=when, value=value, fraction=fraction)
    return env


ENV = _environment()


async def page(template: str, status: int = 200, **context: Any) -> web.Response:
    """`template` rendered with `context`, off the loop (a sample's bodies may be a megabyte each)."""
    html = await asyncio.to_thread(ENV.get_template(template).render, **context)
    response = web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


def _static_files() -> dict[str, bytes]:
    folder = resources.files("shadowdiff.ui") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC}


_FILES = _static_files()


async def static(request: web.Request) -> web.Response:
    """/ui/app.css and /ui/app.js, read from the package once."""
    name = request.match_info["name"]
    if name not in _FILES:
        raise web.HTTPNotFound()
    return web.Response(body=_FILES[name], content_type=STATIC[name], headers={**HEADERS, "Cache-Control": "no-cache"})
