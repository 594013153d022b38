"""Signing in from a browser, over HTTP: the form, the session cookie and its attributes, where a
sign-in may send the browser next, signing out, the sign-in page a page's 401 becomes, and the
header a change made with the session must carry."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import aiohttp
import orjson
import pytest

from shadowdiff.access import CSRF_HEADER, SESSION_COOKIE
from shadowdiff.ui.signin import FORM_LIMIT, safe_next
from shadowdiff.ui.templating import CSP
from tests.conftest import admin_url_of
from tests.tokens import EYES, OPS
from tests.ui.conftest import Guarded, fetch, sign_in

on_the_loop = pytest.mark.asyncio(loop_scope="package")  # the HTTP tests share the demo's backends


async def post(url: str, data: dict[str, str] | bytes, *, session: str | None = None, **headers: str) -> aiohttp.ClientResponse:
    """POST a form (or raw bytes) without following redirects; the response, its body read."""
    cookies = {SESSION_COOKIE: session} if session else None
    async with aiohttp.ClientSession(cookies=cookies) as client:
        async with client.post(url, data=data, headers=headers, allow_redirects=False) as response:
            await response.read()
            return response


def set_cookie(response: aiohttp.ClientResponse) -> SimpleCookie:
    [header] = response.headers.getall("Set-Cookie")
    return SimpleCookie(header)


@pytest.mark.parametrize(
    ("given", "goes"),
    [
        ("/", "/"), ("/route?name=/users/{id}&since=1h", "/route?name=/users/{id}&since=1h"), ("/sample/12#x", "/sample/12#x"),
        (None, "/"), ("", "/"), ("//evil.com", "/"), ("//evil.com/path", "/"), ("https://evil.com", "/"),
        ("http:/evil.com", "/"), ("evil.com", "/"), ("/\\evil.com", "/"), ("/\t/evil.com", "/"), ("/\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"), ("/ui/sign-in", "/"), ("/ui/sign-out", "/"), ("/é", "/"), ("/" + "a" * 3000, "/"),
    ],
)  # fmt: skip
def test_next_is_a_path_of_this_site(given: str | None, goes: str) -> None:
    """`next` is kept only as a path of this site: anything a browser would read as another host (//host, /\\host,
    a tab inside, a scheme), a header break, the sign-in paths themselves or a very long one goes to /."""
    assert safe_next(given) == goes


@on_the_loop
async def test_the_form_asks_for_a_token_it_does_not_keep(guarded: Guarded) -> None:
    """GET /ui/sign-in is a form posting to itself (the UI's policy headers on it): the token a password field
    with autocomplete off, the `next` it was given (made safe) hidden beside it."""
    admin = admin_url_of(await guarded())
    page = await fetch(admin + "/ui/sign-in?next=/route%3Fname%3D/users/%7Bid%7D")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == CSP and page.headers["Cache-Control"] == "no-store"
    assert '<form class="signin-form" method="post" action="/ui/sign-in">' in page.text
    assert re.search(r'<input type="password" id="token" name="token" autocomplete="off"', page.text)
    assert '<input type="hidden" name="next" value="/route?name=/users/{id}">' in page.text
    evil = await fetch(admin + "/ui/sign-in?next=//evil.com")
    assert '<input type="hidden" name="next" value="/">' in evil.text


@on_the_loop
async def test_a_good_token_gets_a_session_cookie_and_goes_next(guarded: Guarded) -> None:
    """The operator's token gets a 303 to `next` and a session cookie: HttpOnly, SameSite=Strict, Path=/, not
    the token, not Secure over plain http; with it, / reads and the header says who is signed in."""
    admin = admin_url_of(await guarded())
    response = await post(admin + "/ui/sign-in", {"token": OPS, "next": "/?sort=route"})
    assert response.status == 303 and response.headers["Location"] == "/?sort=route"
    cookie = set_cookie(response)[SESSION_COOKIE]
    assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"] and OPS not in cookie.value and len(cookie.value) >= 32
    page = await fetch(admin + "/", session=cookie.value)
    assert page.status == 200
    assert re.search(r"signed in as <strong>ops</strong> \(operator\)</span>\s*<span class=\"sep\">·</span>", page.text)
    assert '<form class="sign-out" method="post" action="/ui/sign-out"><button type="submit">sign out</button></form>' in page.text


@pytest.mark.parametrize("goes", ["//evil.com", "https://evil.com/", "/\\evil.com"])
@on_the_loop
async def test_a_sign_in_never_sends_the_browser_elsewhere(guarded: Guarded, goes: str) -> None:
    """A `next` naming another site is replaced by /: no open redirect after signing in."""
    admin = admin_url_of(await guarded())
    response = await post(admin + "/ui/sign-in", {"token": EYES, "next": goes})
    assert response.status == 303 and response.headers["Location"] == "/"


@on_the_loop
async def test_a_bad_token_gets_the_form_again(guarded: Guarded) -> None:
    """A wrong token (or none) is a 401 with the form, the error and the same `next`; no cookie is set."""
    admin = admin_url_of(await guarded())
    for token, said in ((EYES[:-1] + "x", "that token is not one of admin.tokens"), ("", "enter a token")):
        response = await post(admin + "/ui/sign-in", {"token": token, "next": "/route?name=/x"})
        text = await response.text()
        assert response.status == 401 and "Set-Cookie" not in response.headers
        assert f'<p class="error" role="alert">{said}</p>' in text
        assert '<input type="hidden" name="next" value="/route?name=/x">' in text


@on_the_loop
async def test_only_a_small_form_from_this_site_is_taken(guarded: Guarded) -> None:
    """A body over 4 KiB is a 400 and a POST another site's page sent (Sec-Fetch-Site: cross-site, or an Origin
    of another host) a 403: neither signs in nor out."""
    admin = admin_url_of(await guarded())
    big = await post(admin + "/ui/sign-in", b"token=" + OPS.encode() + b"&pad=" + b"x" * FORM_LIMIT,
                     **{"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert big.status == 400 and "Set-Cookie" not in big.headers
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.com"}):
        response = await post(admin + "/ui/sign-in", {"token": OPS}, **headers)
        assert response.status == 403 and "Set-Cookie" not in response.headers, headers
    session = await sign_in(admin, EYES)
    refused = await post(admin + "/ui/sign-out", {}, session=session, **{"Sec-Fetch-Site": "same-site"})
    assert refused.status == 403
    assert (await fetch(admin + "/", session=session)).status == 200  # still signed in
    same = await post(admin + "/ui/sign-in", {"token": OPS}, **{"Sec-Fetch-Site": "same-origin", "Origin": "null"})
    assert same.status == 303  # our pages send no referrer: a browser's Origin is "null"


@on_the_loop
async def test_signing_out_ends_the_session(guarded: Guarded) -> None:
    """POST /ui/sign-out is a 303 to / that clears the cookie, and the session no longer reads: / is the sign-in
    prompt again."""
    admin = admin_url_of(await guarded())
    session = await sign_in(admin, EYES)
    assert (await fetch(admin + "/", session=session)).status == 200
    response = await post(admin + "/ui/sign-out", {}, session=session)
    assert response.status == 303 and response.headers["Location"] == "/"
    cleared = set_cookie(response)[SESSION_COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0" and cleared["path"] == "/"
    assert (await fetch(admin + "/", session=session)).status == 401


@on_the_loop
async def test_a_page_that_needs_a_token_links_to_the_form(guarded: Guarded) -> None:
    """Once a viewer token exists, a page read without one is an HTML 401 (WWW-Authenticate kept) that links to
    the form with the page as `next`; the API still answers JSON; the header shows no state and no one signed in.
    Reached from another site's link (no SameSite=Strict cookie comes then), the page reloads itself once."""
    admin = admin_url_of(await guarded())
    page = await fetch(admin + "/route?name=/users/%7Bid%7D")
    assert page.status == 401 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["WWW-Authenticate"].startswith("Bearer")
    assert '<a class="button" href="/ui/sign-in?next=/route%3Fname%3D/users/%7Bid%7D">Sign in</a>' in page.text
    assert "state-badge" not in page.text and "signed in as" not in page.text
    assert (await fetch(admin + "/", session="a-session-that-expired-or-never-was")).status == 401
    assert '<meta http-equiv="refresh"' not in page.text
    followed = await fetch(admin + "/", headers={"Sec-Fetch-Site": "cross-site"})  # a link on another site's page
    assert followed.status == 401 and '<meta http-equiv="refresh" content="0">' in followed.text
    api = await fetch(admin + "/api/v1/routes")
    assert api.status == 401 and "reading needs a token" in orjson.loads(api.text)["error"]


@on_the_loop
async def test_a_change_with_the_session_needs_the_request_header(guarded: Guarded) -> None:
    """With the operator's session cookie, a change without the X-Shadowdiff-Request header is a 403 and
    changes nothing; with it, it is made."""
    service = await guarded()
    admin = admin_url_of(service)
    session = await sign_in(admin, OPS)
    async with aiohttp.ClientSession(cookies={SESSION_COOKIE: session}) as client:
        async with client.post(admin + "/api/v1/controls", json={"mirroring": "paused"}) as response:
            assert response.status == 403 and CSRF_HEADER in (await response.json())["error"]
        assert service.config.mirror.enabled
        async with client.post(admin + "/api/v1/controls", json={"mirroring": "paused"}, headers={CSRF_HEADER: "1"}) as response:
            assert response.status == 200 and (await response.json())["mirroring"] == "paused"
    assert not service.config.mirror.enabled


@on_the_loop
async def test_the_sign_in_page_has_its_style_and_script_before_signing_in(guarded: Guarded) -> None:
    """Once a viewer token exists, a browser that has not signed in yet still gets the UI's stylesheet and
    script (the package's own files, no data), so the sign-in form is drawn as the rest of the UI."""
    admin = admin_url_of(await guarded())
    for name in ("app.css", "app.js"):
        assert (await fetch(admin + "/ui/" + name)).status == 200, name
