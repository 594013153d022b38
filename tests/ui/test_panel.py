"""The controls panel and the header's state: what each caller sees (the same state, the controls
enabled for an operator alone, the reason for anyone else), as plain values and on the pages of
proxies with and without admin tokens."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from shadowdiff.access import ANONYMOUS, CSRF_HEADER, SESSION_COOKIE, Access, Caller
from shadowdiff.ui import panel
from tests.conftest import admin_url_of
from tests.tokens import EYES, OPS
from tests.ui.conftest import Guarded, fetch, sign_in

on_the_loop = pytest.mark.asyncio(loop_scope="package")  # the HTTP tests share the demo's backends
BOTH = Access([("ops", "operator", OPS.encode()), ("eyes", "viewer", EYES.encode())])
OPERATOR_ONLY = Access([("ops", "operator", OPS.encode())])
OPEN = Access([])
OPERATOR, VIEWER, NO_ONE = Caller("ops", "operator"), Caller("eyes", "viewer"), Caller(None, ANONYMOUS)
CONTROLS = ("sample-rate", "reask-rate", "mirroring", "sample_rate", "reask_rate")


def state(**changes: Any) -> dict[str, Any]:
    """A Controls.state() answer: mirroring on at the file's settings unless `changes` say otherwise."""
    config = {"mirroring": "on", "sample_rate": 1.0, "reask_rate": 0.0}
    return {**config, "overridden": [], "config": config, "note": "live settings are lost on restart", **changes}


@pytest.mark.parametrize(
    ("access", "caller", "can_change", "why"),
    [
        (BOTH, OPERATOR, True, None),
        (BOTH, VIEWER, False, panel.VIEWER),
        (OPERATOR_ONLY, NO_ONE, False, panel.SIGNED_OUT),
        (OPEN, NO_ONE, False, panel.NO_OPERATOR),
        (Access([("eyes", "viewer", EYES.encode())]), VIEWER, False, panel.NO_OPERATOR),
    ],
)  # fmt: skip
def test_only_an_operator_may_press_the_controls(access: Access, caller: Caller, can_change: bool, why: str | None) -> None:
    """The controls are enabled for an operator's token alone; a viewer is told to sign in as an operator,
    an anonymous caller to sign in, and anyone, while no operator token is configured, that none is."""
    shown = panel.panel(state(), access, caller, here="/?sort=route")
    assert (shown.can_change, shown.why) == (can_change, why)
    assert shown.sign_in == "/ui/sign-in?next=/%3Fsort%3Droute"


def test_the_panel_tells_live_settings_from_the_files() -> None:
    """An overridden setting is shown as live with the file's value beside it; the others come from the file;
    a file that turns mirroring off is said to be stronger than Resume."""
    shown = panel.panel(
        state(mirroring="paused", sample_rate=0.5, overridden=["mirroring", "sample_rate"]), BOTH, OPERATOR, here="/"
    )
    assert shown.paused and shown.sample_rate == 0.5 and not shown.file_off
    assert [(s.name, s.value, s.configured, s.live) for s in shown.settings] == [
        ("mirroring", "paused", "on", True), ("sample_rate", 0.5, 1.0, True), ("reask_rate", 0.0, 0.0, False),
    ]  # fmt: skip
    off = state(mirroring="paused", config={"mirroring": "paused", "sample_rate": 1.0, "reask_rate": 0.0})
    assert panel.panel(off, BOTH, OPERATOR, here="/").file_off


def test_the_header_shows_the_state_only_to_whom_may_read_it() -> None:
    """The header's badge has the state for anyone who may read it (no state without controls, nor for an
    anonymous caller once a viewer token exists); a sign-in link while tokens exist and no one is signed in."""
    paused = state(mirroring="paused", sample_rate=0.25)
    assert panel.header(paused, BOTH, VIEWER, signed_in=True, here="/").paused is True
    assert panel.header(paused, BOTH, VIEWER, signed_in=True, here="/").sample_rate == 0.25
    assert panel.header(paused, BOTH, NO_ONE, signed_in=False, here="/").paused is None
    assert panel.header(paused, OPERATOR_ONLY, NO_ONE, signed_in=False, here="/").paused is True
    assert panel.header(None, OPEN, NO_ONE, signed_in=False, here="/").paused is None
    assert panel.header(paused, BOTH, NO_ONE, signed_in=False, here="/route").sign_in == "/ui/sign-in?next=/route"
    escaped = panel.header(paused, BOTH, NO_ONE, signed_in=False, here="/route?name=/users/%7Bid%7D&since=1h")
    assert escaped.sign_in == "/ui/sign-in?next=/route%3Fname%3D/users/%7Bid%7D%26since%3D1h"  # escaped once, not twice
    assert panel.header(paused, OPEN, NO_ONE, signed_in=False, here="/").sign_in is None
    assert panel.header(paused, BOTH, VIEWER, signed_in=True, here="/").sign_in is None


def controls_of(text: str) -> str:
    found = re.search(r'<section id="controls".*?</section>', text, re.DOTALL)
    assert found, "no controls panel"
    return found.group(0)


def disabled(html: str) -> dict[str, bool]:
    """Each control of the panel (by its id or data-change) and whether it is disabled."""
    found = {}
    for tag in re.findall(r"<(?:button|input)\b[^>]*>", html):
        key = re.search(r'(?:data-change|id)="([^"]+)"', tag)
        if key and key.group(1) in CONTROLS:
            found[key.group(1)] = bool(re.search(r"\sdisabled\b", tag))
    assert set(found) == set(CONTROLS), found
    return found


@on_the_loop
async def test_an_anonymous_caller_sees_the_state_and_disabled_controls(guarded: Guarded) -> None:
    """With an operator token alone (reads open), / shows the panel to anyone: mirroring on, the file's rates,
    the note that live settings are lost on restart, every control disabled and a sign-in link as the reason;
    the header's badge says mirroring on and the sample rate."""
    admin = admin_url_of(await guarded(viewer=False))
    page = await fetch(admin + "/")
    assert page.status == 200
    shown = controls_of(page.text)
    assert '<span class="state on" data-state="mirroring">on</span>' in shown
    assert "live settings are lost on restart" in shown
    assert all(disabled(shown).values())
    assert 'Changes need an operator\'s token: <a href="/ui/sign-in?next=/">sign in</a>' in shown
    assert re.search(r'id="state-badge" class="state on"[^>]*>mirroring on<span class="rate"> · sample rate 1</span>', page.text)


@on_the_loop
async def test_a_viewer_sees_them_disabled_and_an_operator_enabled(guarded: Guarded) -> None:
    """Signed in as the viewer, the controls are disabled and the panel says a viewer cannot change them;
    signed in as the operator they are enabled, with the noscript note that they need JavaScript."""
    admin = admin_url_of(await guarded())
    viewer = controls_of((await fetch(admin + "/", session=await sign_in(admin, EYES))).text)
    assert all(disabled(viewer).values())
    assert "Signed in as eyes, a viewer: changes need an operator" in viewer
    operator = controls_of((await fetch(admin + "/", session=await sign_in(admin, OPS))).text)
    assert not any(disabled(operator).values())
    assert "<noscript>" in operator and "need an operator" not in operator
    assert f'data-endpoint="/api/v1/controls" data-csrf-header="{CSRF_HEADER}"' in operator


@on_the_loop
async def test_without_tokens_the_panel_says_none_is_configured(guarded: Guarded) -> None:
    """With no admin.tokens, the controls are disabled and the panel points at admin.tokens; no sign-in link anywhere."""
    admin = admin_url_of(await guarded(tokens=False))
    page = await fetch(admin + "/")
    shown = controls_of(page.text)
    assert all(disabled(shown).values())
    assert "No operator token is configured: see <code>admin.tokens</code>" in shown
    assert "/ui/sign-in" not in page.text


@on_the_loop
async def test_a_change_shows_on_every_page(guarded: Guarded) -> None:
    """After an operator pauses mirroring and sets the sample rate through the API, / shows PAUSED with both
    settings live beside the file's values, a button to put the file's rate back and Resume in place of Pause, and the header of the other pages
    (a route, an error page) says PAUSED and the new rate."""
    service = await guarded(viewer=False)
    admin = admin_url_of(service)
    session = await sign_in(admin, OPS)
    async with aiohttp.ClientSession(cookies={SESSION_COOKIE: session}) as client:
        for change in ({"mirroring": "paused"}, {"sample_rate": 0.5}):
            async with client.post(admin + "/api/v1/controls", json=change, headers={CSRF_HEADER: "1"}) as response:
                assert response.status == 200, await response.text()
    shown = controls_of((await fetch(admin + "/", session=session)).text)
    assert '<span class="state paused" data-state="mirroring">PAUSED</span>' in shown
    assert re.search(r'<span class="value">0.5</span>\s*<span class="origin">live setting · the file says 1</span>', shown)
    assert re.search(r'<span class="value">paused</span>\s*<span class="origin">live setting · the file says on</span>', shown)
    assert 'data-value="on">Resume mirroring</button>' in shown
    assert '<button type="button" class="reset" data-change="sample_rate" data-reset>Use the file\'s</button>' in shown
    assert 'data-change="reask_rate" data-reset' not in shown  # not a live setting: nothing to put back
    for path in ("/route?name=/never/seen", "/sample/abc", "/"):
        text = (await fetch(admin + path, session=session)).text
        assert re.search(r'id="state-badge" class="state paused"[^>]*>PAUSED<span class="rate"> · sample rate 0.5</span>', text), path
    assert "<section id=\"controls\"" not in (await fetch(admin + "/route?name=/never/seen")).text
