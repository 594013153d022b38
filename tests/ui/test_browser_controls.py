"""The controls in headless Chromium: an operator signs in with the form, pauses mirroring, sets the
sample rate and resumes, and the proxy does what the page says; a viewer sees the same panel with
its controls disabled, and signs out; without JavaScript the form and the state still work.
Screenshots go where tests/ui/test_browser.py puts its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page

from shadowdiff.service import ShadowDiff
from tests.conftest import admin_url_of, metrics, settle, url_of
from tests.tokens import EYES, OPS
from tests.ui.apps import send
from tests.ui.conftest import Guarded, fetch
from tests.ui.test_browser import VIEWPORT, WAIT_MS, at

pytestmark = pytest.mark.asyncio(loop_scope="package")
SKIPPED_PAUSED = ("shadowdiff_mirror_skipped_total", {"reason": "paused"})
ELSEWHERE = "http://elsewhere.test/"  # another site's page, drawn by the test itself (nothing leaves the machine)


@pytest_asyncio.fixture(loop_scope="package")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser context: no cookies, so no session."""
    made = await browser.new_context(viewport=VIEWPORT)
    made.set_default_timeout(WAIT_MS)
    yield made
    await made.close()


async def signed_in(context: BrowserContext, service: ShadowDiff, token: str) -> tuple[Page, list[str]]:
    """A tab that opened /, was shown the sign-in prompt, followed it and signed in with `token`; back on /
    (a few routes compared by then, for the screenshots), with the console errors it logs from then on."""
    await send(url_of(service), [f"/users/{n}" for n in range(1, 15)] + [f"/orders/{n}" for n in range(1000, 1006)] + ["/health"])
    await settle(service)
    page = await context.new_page()
    admin = admin_url_of(service)
    response = await page.goto(admin + "/")
    assert response is not None and response.status == 401
    await page.get_by_role("link", name="Sign in", exact=True).click()
    await page.wait_for_url(at("/ui/sign-in?next=/"))
    await page.fill("#token", token)
    await page.click(".signin-form button[type=submit]")
    await page.wait_for_url(admin + "/")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


async def controls(service: ShadowDiff) -> dict:
    page = await fetch(admin_url_of(service) + "/api/v1/controls", headers={"Authorization": f"Bearer {OPS}"})
    assert page.status == 200, page.text
    return orjson.loads(page.text)


async def skipped_when_paused(service: ShadowDiff, paths: list[str]) -> float:
    """How many copies the proxy skipped as paused after `paths` went through it."""
    await send(url_of(service), paths)
    await settle(service)
    return metrics(service).value(SKIPPED_PAUSED[0], **SKIPPED_PAUSED[1])


async def test_an_operator_pauses_sets_the_rate_and_resumes(
    guarded: Guarded, context: BrowserContext, screenshots: Path
) -> None:
    """Signed in as the operator: Pause turns the panel and the header's badge to PAUSED, the API says paused
    and traffic sent then is counted as skipped (paused); a sample rate of 0.5 is shown as a live setting;
    a rate of 1.5 is refused with the server's words; "Use the file's" puts the file's rate back; Resume turns
    mirroring back on, in the API too."""
    service = await guarded()
    page, errors = await signed_in(context, service, OPS)
    assert "signed in as ops (operator)" in await page.locator(".who").inner_text()
    assert await page.locator("#state-badge").inner_text() == "mirroring on · sample rate 1"
    before = await skipped_when_paused(service, ["/users/1", "/health"])

    await page.get_by_role("button", name="Pause mirroring").click()
    await page.locator('#controls [data-state="mirroring"]', has_text="PAUSED").wait_for()
    assert (await page.locator("#state-badge").inner_text()).startswith("PAUSED")
    assert "mirroring PAUSED" in await page.locator("#control-status").inner_text()
    assert (await controls(service))["mirroring"] == "paused"
    assert await skipped_when_paused(service, [f"/users/{n}" for n in range(1, 11)]) >= before + 10

    await page.fill("#sample-rate", "0.5")
    await page.press("#sample-rate", "Enter")
    rate = page.locator('#controls .setting[data-setting="sample_rate"]')
    await rate.locator(".value", has_text="0.5").wait_for()
    assert await rate.locator(".origin").inner_text() == "live setting · the file says 1"
    assert await page.locator("#state-badge").inner_text() == "PAUSED · sample rate 0.5"
    assert (await controls(service))["sample_rate"] == 0.5
    await page.screenshot(path=screenshots / "controls-paused.png", full_page=True)

    await page.fill("#sample-rate", "1.5")
    await page.click('#controls button[data-input="sample-rate"]')
    status = page.locator("#control-status.failed")
    await status.wait_for()
    assert "sample_rate must be a number from 0 to 1" in await status.inner_text()
    assert (await controls(service))["sample_rate"] == 0.5

    await rate.get_by_role("button", name="Use the file's").click()
    await rate.locator(".origin", has_text="from the config file").wait_for()
    assert await rate.locator(".value").inner_text() == "1"
    assert "sample_rate" not in (await controls(service))["overridden"]

    await page.get_by_role("button", name="Resume mirroring").click()
    await page.locator('#controls [data-state="mirroring"]', has_text="on").wait_for()
    assert await page.locator("#state-badge").inner_text() == "mirroring on · sample rate 1"
    assert (await controls(service))["mirroring"] == "on"
    assert service.config.mirror.enabled
    # The one error: Chromium logs the refused change's answer (a 400) as a resource that failed to load.
    assert errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]


async def test_a_viewer_sees_the_controls_disabled_then_signs_out(
    guarded: Guarded, context: BrowserContext, screenshots: Path
) -> None:
    """Signed in as the viewer, the panel shows the state with every button and box disabled and says why;
    clicking Pause (forced) sends nothing, and mirroring stays on. A link to the UI followed from another site
    (which leaves the SameSite=Strict cookie behind) opens the page signed in after one reload. The header's
    sign out button then ends the session: the browser lands on the sign-in prompt (a 401 page)."""
    service = await guarded()
    page, errors = await signed_in(context, service, EYES)
    for control in ("Pause mirroring", "Set"):
        for button in await page.get_by_role("button", name=control, exact=True).all():
            assert await button.is_disabled(), control
    assert await page.locator("#sample-rate").is_disabled() and await page.locator("#reask-rate").is_disabled()
    assert "Signed in as eyes, a viewer: changes need an operator's token" in await page.locator("#controls").inner_text()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" else None)
    await page.get_by_role("button", name="Pause mirroring").click(force=True)
    assert sent == [] and (await controls(service))["mirroring"] == "on"
    await page.screenshot(path=screenshots / "controls-viewer.png", full_page=True)
    assert errors == []

    admin = admin_url_of(service)
    link = f'<a href="{admin}/?sort=route">the proxy</a>'
    await context.route(ELSEWHERE, lambda route: route.fulfill(content_type="text/html", body=link))
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.url == admin + "/?sort=route" else None)
    await page.goto(ELSEWHERE)
    await page.click("a")
    await page.locator("#controls").wait_for()
    assert statuses == [401, 200]  # the cookie stayed behind on the way from the other site, and came on the reload

    async with page.expect_response(lambda r: r.url == admin_url_of(service) + "/") as landed:
        await page.click(".sign-out button")
    assert (await landed.value).status == 401
    assert await page.locator("h1").inner_text() == "Sign in to read this page"


async def test_without_javascript_the_form_signs_in_and_the_state_shows(guarded: Guarded, browser: Browser) -> None:
    """With JavaScript off, the sign-in form still signs in (a plain form post and a redirect), and / shows the
    state and the badge; the operator's buttons say, in a noscript note, that they need JavaScript."""
    service = await guarded(viewer=False)
    context = await browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    try:
        page = await context.new_page()
        await page.goto(admin_url_of(service) + "/ui/sign-in?next=/")
        await page.fill("#token", OPS)
        await page.click(".signin-form button[type=submit]")
        await page.wait_for_url(admin_url_of(service) + "/")
        assert await page.locator('#controls [data-state="mirroring"]').inner_text() == "on"
        assert await page.locator("#state-badge").inner_text() == "mirroring on · sample rate 1"
        assert "These buttons need JavaScript" in await page.locator("#controls").inner_text()
    finally:
        await context.close()
