"""The UI in headless Chromium: what a person clicking through it sees. Each view is saved as a
full-page screenshot under the test run's output (tests/ui/conftest.py: `screenshots`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from shadowdiff.service import ShadowDiff
from tests.conftest import admin_url_of
from tests.ui.conftest import Demo, api, demo_config

pytestmark = pytest.mark.asyncio(loop_scope="package")
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 5000  # a view is local: anything slower is a failure, not a slow machine


def at(path: str):  # noqa: ANN201 (a URL predicate for wait_for_url)
    """A wait_for_url predicate: the page's URL, decoded, ends with `path` (braces and $ are glob syntax to Playwright)."""
    return lambda url: unquote(url).endswith(path)


class Visit:
    """A browser tab on one admin listener that records every URL it asked for and every console error."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page, self.origin = page, origin
        self.requested: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requested.append(r.url))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    async def open(self, path: str) -> Page:
        response = await self.page.goto(self.origin + path)
        assert response is not None and response.status == 200, path
        return self.page

    def stayed_home(self) -> None:
        """Nothing was fetched from another origin, and nothing was refused (a CSP violation is a console error)."""
        assert [u for u in self.requested if not u.startswith(self.origin) and not u.startswith("data:")] == []
        assert self.errors == []


@pytest_asyncio.fixture(loop_scope="package")
async def visit(browser: Browser, demo: Demo) -> AsyncIterator[Visit]:
    """A fresh context on the demo proxy's admin listener, allowed to use the clipboard."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.admin)
    yield Visit(await context.new_page(), demo.admin)
    await context.close()


async def column(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in await page.locator(selector).all_inner_texts()]


async def test_routes_view_lists_worst_first_and_sorts_on_click(visit: Visit, demo: Demo, screenshots: Path) -> None:
    """The routes view lists the all-mismatch /products/{id} first and the matching /health last;
    clicking the Comparisons header re-sorts by comparisons (most first, /users/{id}'s 126), and
    clicking it again reverses that; the URL says so each time."""
    page = await visit.open("/")
    names = await column(page, "td.route a")
    assert names[0] == "/products/{id}" and names[-1] == "/health"
    await page.screenshot(path=screenshots / "routes.png", full_page=True)

    await page.click('th a[data-sort="compared"]')
    await page.wait_for_url(at("/?sort=compared"))
    view = await api(demo, "/api/v1/routes")
    by_count = [r["route"] for r in sorted(view["routes"], key=lambda r: -r["compared"])]
    assert await column(page, "td.route a") == by_count
    assert await page.get_attribute('th[aria-sort]', "aria-sort") == "descending"

    await page.click('th a[data-sort="compared"]')
    await page.wait_for_url(at("/?sort=compared&dir=asc"))
    assert await column(page, "td.route a") == by_count[::-1]
    visit.stayed_home()


async def test_route_view_puts_regressions_and_noise_apart(visit: Visit, screenshots: Path) -> None:
    """Clicking /users/{id} opens its view with $.plan under Regressions (a regression badge) and
    nothing under Noise; /orders/{id}'s $.generated_at is under Noise with its suggested rule."""
    page = await visit.open("/")
    await page.get_by_role("link", name="/users/{id}", exact=True).click()
    await page.wait_for_url(at("/route?name=/users/{id}"))
    regressions = page.locator("#regressions tr.field")
    assert await regressions.locator("td.path").all_inner_texts() == ["$.plan"]
    assert await regressions.locator(".badge").inner_text() == "regression"
    assert await page.locator("#noise tr.field").count() == 0
    await page.screenshot(path=screenshots / "route-regression.png", full_page=True)

    page = await visit.open("/route?name=" + quote("/orders/{id}"))
    noise = page.locator("#noise tr.field")
    assert await noise.locator("td.path").all_inner_texts() == ["$.generated_at"]
    assert "kind: \"ignore\"" in await page.locator("#noise pre.yaml").inner_text()
    await page.screenshot(path=screenshots / "route-noise.png", full_page=True)
    visit.stayed_home()


async def test_sample_view_highlights_the_differing_path(visit: Visit, demo: Demo, screenshots: Path) -> None:
    """From /users/{id}'s view, a field's samples link and then a sample open the side-by-side view:
    $.plan is highlighted on both sides, with each side's own plan as the highlighted text."""
    page = await visit.open("/route?name=" + quote("/users/{id}"))
    await page.click("#regressions a:text('samples')")
    await page.wait_for_url(at("/route?name=/users/{id}&part=body&path=$.plan#samples"))
    await page.click("#samples tbody tr:first-child td:first-child a")
    await page.wait_for_url(lambda url: "/sample/" in url)
    sample = await api(demo, "/api/v1/samples/" + page.url.rsplit("/", 1)[1])
    primary = page.locator('#primary mark[data-path="$.plan"]')
    shadow = page.locator('#shadow mark[data-path="$.plan"]')
    assert await primary.inner_text() == f'"{sample["primary"]["body"]["content"]["plan"]}"'
    assert await shadow.inner_text() == f'"{sample["shadow"]["body"]["content"]["plan"]}"'
    assert await primary.inner_text() != await shadow.inner_text()
    assert await page.locator("#primary .status .code").inner_text() == f'{sample["primary"]["status"]} {sample["primary"]["reason"]}'
    await page.screenshot(path=screenshots / "sample.png", full_page=True)
    visit.stayed_home()


async def test_copy_button_puts_the_rule_on_the_clipboard(visit: Visit, demo: Demo) -> None:
    """The noise field's Copy button writes its suggested rule, exactly as the API gives it, to the clipboard."""
    page = await visit.open("/route?name=" + quote("/orders/{id}"))
    rule = next(f["rule"] for f in (await api(demo, "/api/v1/fields?route=/orders/{id}"))["fields"] if f["path"] == "$.generated_at")
    button = page.locator("#noise button.copy")
    await button.click()
    await page.wait_for_function("document.querySelector('#noise button.copy').textContent === 'Copied'")
    assert await page.evaluate("navigator.clipboard.readText()") == rule
    visit.stayed_home()


async def test_without_a_clipboard_the_copy_button_selects_the_rule(browser: Browser, demo: Demo) -> None:
    """Where the page may not write the clipboard (plain http to a host name: no navigator.clipboard),
    the Copy button selects the rule's text instead and says to press Ctrl+C."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    await context.add_init_script("delete Navigator.prototype.clipboard")
    rule = next(f["rule"] for f in (await api(demo, "/api/v1/fields?route=/orders/{id}"))["fields"] if f["path"] == "$.generated_at")
    try:
        page = await context.new_page()
        await page.goto(demo.admin + "/route?name=" + quote("/orders/{id}"))
        assert await page.evaluate("navigator.clipboard === undefined")
        await page.click("#noise button.copy")
        assert await page.locator("#noise button.copy").inner_text() == "Selected: press Ctrl+C"
        # A selection's text leaves out the final newline of a <pre>; what Ctrl+C copies is the rest, as it is.
        assert await page.evaluate("window.getSelection().toString()") == rule.removesuffix("\n")
    finally:
        await context.close()


async def test_views_work_without_javascript(browser: Browser, demo: Demo) -> None:
    """With JavaScript off, sorting is a link that still works and the rule is on the page as text
    (the copy button, which needs the script, stays hidden)."""
    context = await browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    try:
        page = await context.new_page()
        await page.goto(demo.admin + "/")
        await page.click('th a[data-sort="route"]')
        await page.wait_for_url(at("/?sort=route"))
        names = [t.strip() for t in await page.locator("td.route a").all_inner_texts()]
        assert names == sorted(names)
        await page.goto(demo.admin + "/route?name=" + quote("/orders/{id}"))
        assert "$.generated_at" in await page.locator("#noise pre.yaml").inner_text()
        assert not await page.locator("#noise button.copy").is_visible()
    finally:
        await context.close()


async def test_a_fresh_proxy_shows_what_to_do(browser: Browser, demo: Demo, screenshots: Path) -> None:
    """On a proxy that has compared nothing, the routes view says there are no comparisons yet and how
    to send traffic, instead of an empty table."""
    service = ShadowDiff(demo_config(demo.primary, demo.shadow))  # the test's own state directory: an empty store
    await service.start()
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    try:
        page = await context.new_page()
        await page.goto(admin_url_of(service) + "/")
        assert await page.locator("section.empty h2").inner_text() == "No comparisons yet"
        assert "Send traffic through the proxy" in await page.locator("section.empty").inner_text()
        assert await page.locator("table").count() == 0
        await page.screenshot(path=screenshots / "empty.png", full_page=True)
    finally:
        await context.close()
        await service.stop()
