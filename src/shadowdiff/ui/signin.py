"""Signing in from a browser: the form at /ui/sign-in, the session cookie, signing out, and the
page a browser gets instead of the API's JSON 401 when reading a page needs a token.

Who may do what is `access`'s: these handlers only trade a token for a session
(`Access.sign_in`) and back. Both paths pass the access middleware for any method, so they
check for themselves that a POST comes from this site's own page (`Sec-Fetch-Site`, `Origin`):
another site can neither sign a browser out nor into a session of its own. The cookie holds
a random session id, never the token: HttpOnly, SameSite=Strict, Path=/ (Secure behind TLS).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from shadowdiff.access import ANONYMOUS, READS, SESSION_COOKIE, SESSION_SECONDS, SIGN_IN_PATHS, Access, Caller
from shadowdiff.control_api import CALLER
from shadowdiff.controls import audit_line
from shadowdiff.ui.panel import sign_in_href
from shadowdiff.ui.templating import page

FORM_LIMIT = 4096  # a token and where to go next
NEXT_LIMIT = 2000
NO_ONE = Caller(None, ANONYMOUS)
Frame = Callable[..., dict[str, Any]]  # Pages.frame: the layout's context for a page
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def safe_next(raw: str | None) -> str:
    """Where to go once signed in: a path of this site ("/..."), else "/". Nothing that a browser
    would read as another host (`//host`, `/\\host`, a scheme) or that could split a header."""
    if not raw or len(raw) > NEXT_LIMIT or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    if any(not 0x21 <= ord(c) <= 0x7E for c in raw):  # a tab or newline is dropped by URL parsers: "/\t/evil"
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or parts.path in SIGN_IN_PATHS:
        return "/"
    return raw


def same_site(request: web.Request) -> bool:
    """Whether a POST comes from this site's own page, as far as the browser says (a client that says
    nothing, such as curl, is not a browser another site could drive)."""
    fetched = request.headers.get("Sec-Fetch-Site")
    if fetched is not None and fetched not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    # Our pages send Referrer-Policy: no-referrer, under which a browser's Origin is "null".
    return origin is None or origin == "null" or urlsplit(origin).netloc == request.host


def caller_of(request: web.Request, access: Access) -> Caller:
    """Who is asking: what the access middleware found, or, on the sign-in paths (which it lets through
    unchecked), who the session cookie names."""
    if request.path not in SIGN_IN_PATHS:
        return request.get(CALLER) or NO_ONE
    return access.session(request.cookies.get(SESSION_COOKIE)) or NO_ONE


async def _form(request: web.Request) -> dict[str, str] | None:
    """The form's fields; None for a body over FORM_LIMIT or one that is not a form."""
    if request.content_length is not None and request.content_length > FORM_LIMIT:
        return None
    body = bytearray()
    while chunk := await request.content.read(FORM_LIMIT + 1 - len(body)):
        body += chunk
        if len(body) > FORM_LIMIT:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8))
    except (UnicodeDecodeError, ValueError):
        return None


class SignIn:
    def __init__(self, access: Access, frame: Frame) -> None:
        self.access = access
        self._frame = frame

    async def _page(self, request: web.Request, status: int = 200, **context: Any) -> web.Response:
        caller = caller_of(request, self.access)
        frame = self._frame(request, [("Sign in", None, False)], caller=caller, bare=True)
        context = {"error": None, "next": "/", "needed": False, "retry": False, **context}
        configured = self.access.tokens
        hours = SESSION_SECONDS // 3600
        shown = {"who": caller, "configured": configured, "sign_in": sign_in_href(context["next"]), "session_hours": hours}
        return await page("signin.html", status, **frame, **shown, **context)

    async def form(self, request: web.Request) -> web.Response:
        """GET /ui/sign-in[?next=PATH]: the form."""
        return await self._page(request, next=safe_next(request.query.get("next")))

    async def sign_in(self, request: web.Request) -> web.Response:
        """POST /ui/sign-in (token=...&next=...): a good token gets a session cookie and a 303 to `next`;
        any other the form again, a 401 saying so."""
        if not same_site(request):
            return await self._page(request, 403, error="this form can only be sent from this site's own page")
        form = await _form(request)
        if form is None:
            return await self._page(request, 400, error=f"send the form as it is (a token, at most {FORM_LIMIT} bytes)")
        where = safe_next(form.get("next"))
        token = form.get("token", "").strip()
        session = self.access.sign_in(token) if token else None
        if session is None:
            audit_line(None, request.remote, "sign-in", None, None, "refused: not one of admin.tokens")
            error = "that token is not one of admin.tokens" if token else "enter a token"
            return await self._page(request, 401, error=error, next=where)
        caller = self.access.session(session) or NO_ONE
        audit_line(caller.name, request.remote, "sign-in", None, caller.role, "accepted")
        self.access.sign_out(request.cookies.get(SESSION_COOKIE))  # the session this browser had before, if any
        response = web.Response(status=303, headers={"Location": where, "Cache-Control": "no-store"})
        secure = request.secure or None  # Secure only behind TLS: the admin listener is often plain http on loopback
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Strict", secure=secure)
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        """POST /ui/sign-out: the session ends, its cookie is cleared, and a 303 to /."""
        if not same_site(request):
            return await self._page(request, 403, error="signing out can only be asked from this site's own page")
        caller = caller_of(request, self.access)
        if caller.name is not None:
            audit_line(caller.name, request.remote, "sign-out", caller.role, None, "accepted")
        self.access.sign_out(request.cookies.get(SESSION_COOKIE))
        response = web.Response(status=303, headers={"Location": "/", "Cache-Control": "no-store"})
        response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    def prompt(self) -> Any:
        """A middleware to put in front of the access middleware: a page's read that it refused (401) becomes
        an HTML page linking to the sign-in form, its status and WWW-Authenticate kept; the API and the
        UI's own files keep their JSON."""

        @web.middleware
        async def sign_in_prompt(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if response.status != 401 or request.method not in READS or request.path.startswith(("/api/", "/ui/")):
                return response
            # A link followed from another site (a chat, a ticket) comes without the SameSite=Strict cookie:
            # the prompt reloads itself once, from this site, which sends it (and, signed out, shows again).
            retry = request.headers.get("Sec-Fetch-Site") == "cross-site"
            shown = await self._page(request, 401, needed=True, retry=retry, next=safe_next(request.path_qs))
            if "WWW-Authenticate" in response.headers:
                shown.headers["WWW-Authenticate"] = response.headers["WWW-Authenticate"]
            return shown

        return sign_in_prompt

