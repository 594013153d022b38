"""The UI's pages over HTTP, from a proxy that compared real traffic: what each view lists, its
order, the links that keep the range, the error pages, escaping of hostile names and bodies,
and the store-off and fresh-proxy variants."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from markupsafe import escape

from shadowdiff import config as configuration
from shadowdiff.service import ShadowDiff
from tests.conftest import admin_url_of, settle, url_of
from tests.ui.apps import HOSTILE, HOSTILE_BODY, HOSTILE_HEADER, HOSTILE_ROUTE, send
from tests.ui.conftest import Demo, api, demo_config, fetch

pytestmark = pytest.mark.asyncio(loop_scope="package")


def esc(text: str) -> str:
    """`text` as the templates escape it (Jinja2's autoescape: markupsafe)."""
    return str(escape(text))


def route_names(text: str) -> list[str]:
    return [html.unescape(name) for name in re.findall(r'<td class="route"><a class="mono" href="[^"]*">([^<]*)</a>', text)]


def hrefs(text: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="([^"]*)"', text)]


def section(text: str, name: str) -> str:
    """The HTML of <section id=NAME>."""
    found = re.search(rf'<section id="{name}">(.*?)</section>', text, re.DOTALL)
    assert found, name
    return found.group(1)


def worst_first(view: dict) -> list[str]:
    rows = view["routes"]
    return [r["route"] for r in sorted(rows, key=lambda r: (-(r["comparisons"]["mismatch"] / r["compared"]), -r["compared"], r["route"]))]


async def sample_of(demo: Demo, route: str, path: str) -> dict:
    found = (await api(demo, f"/api/v1/samples?route={quote(route)}&path={quote(path)}"))["samples"]
    assert found, (route, path)
    return found[0]


async def test_routes_page_lists_every_route_worst_first(demo: Demo) -> None:
    """/ is an HTML page that lists every route the API lists, highest mismatch rate first, then most
    comparisons: the all-mismatch /products/{id} (30 comparisons) before the hostile route (3), the
    matching /health last; each links to its route page."""
    page = await fetch(demo.admin + "/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    names = route_names(page.text)
    assert names == worst_first(await api(demo, "/api/v1/routes"))
    assert names[:2] == ["/products/{id}", HOSTILE_ROUTE]
    assert names[-1] == "/health"
    assert "/route?name=/users/{id}" in hrefs(page.text)


@pytest.mark.parametrize(
    ("query", "key", "descending"),
    [("sort=compared", "compared", True), ("sort=compared&dir=asc", "compared", False), ("sort=route", "route", False),
     ("sort=nonsense", None, True)],
)  # fmt: skip
async def test_sort_param_orders_the_routes(demo: Demo, query: str, key: str | None, descending: bool) -> None:
    """?sort= orders the table by that column, in its natural direction unless dir= says otherwise; an
    unknown key falls back to worst first."""
    view = await api(demo, "/api/v1/routes")
    names = route_names((await fetch(demo.admin + "/?" + query)).text)
    if key is None:
        assert names == worst_first(view)
        return
    value = {"compared": lambda r: r["compared"], "route": lambda r: r["route"]}[key]
    assert [value(r) for r in sorted(view["routes"], key=lambda r: names.index(r["route"]))] == sorted(
        (value(r) for r in view["routes"]), reverse=descending
    )


async def test_the_active_column_links_to_its_reverse(demo: Demo) -> None:
    """The header of the column the table is sorted by links to the opposite direction; the others
    to their own natural one, and the active header says how it is sorted (aria-sort)."""
    text = (await fetch(demo.admin + "/?sort=compared")).text
    assert "/?sort=compared&dir=asc" in hrefs(text)
    assert "/?sort=route" in hrefs(text)
    assert re.search(r'aria-sort="descending"[^>]*>\s*<a href="/\?sort=compared&amp;dir=asc"', text)


async def test_the_range_travels_in_every_link(demo: Demo) -> None:
    """With ?since=1h, the routes page's links to routes and sorts, the route page's links to samples
    and the sample page's way back all keep since=1h; the range selector marks 1h and its links swap it."""
    routes = await fetch(demo.admin + "/?since=1h")
    assert routes.status == 200
    links = hrefs(routes.text)
    assert "/route?name=/users/{id}&since=1h" in links
    assert "/?since=1h&sort=compared" in links
    assert re.search(r'<a href="/\?since=1h" class="active" aria-current="true">1h</a>', routes.text)
    assert "/?since=24h" in links and "/" in links
    route = await fetch(demo.admin + "/route?since=1h&name=" + quote("/users/{id}"))
    samples = [h for h in hrefs(route.text) if h.startswith("/sample/")]
    assert samples and all(h.endswith("?since=1h") for h in samples)
    sample = await fetch(demo.admin + samples[0])
    assert "/route?name=/users/{id}&since=1h" in hrefs(sample.text)


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [
        ("/?since=xx", 400, "since must be a duration such as 15m, 1h, 24h or 7d, got &#39;xx&#39;"),
        ("/route?name=/users/{id}&from=yesterday", 400, "from must be epoch seconds or ISO 8601"),
        ("/?from=2000&to=1000", 400, "to must be after from"),
        ("/route", 400, "say which route"),
        ("/route?name=/never/seen", 404, "no comparisons seen on route &#39;/never/seen&#39;"),
        ("/sample/999999", 404, "no sample 999999"),
        ("/sample/abc", 400, "a sample id is a whole number"),
    ],
)
async def test_views_that_cannot_be_drawn_say_why(demo: Demo, path: str, status: int, said: str) -> None:
    """A bad range is a 400 page with the parser's message, an unknown route or sample a 404 page, a
    missing or malformed name a 400: HTML with the layout, and links back that carry no bad range."""
    page = await fetch(demo.admin + path)
    assert page.status == status
    assert page.headers["Content-Type"].startswith("text/html")
    assert said in page.text
    assert "Back to the routes" in page.text
    assert not any("since=xx" in h or "from=" in h for h in hrefs(page.text))


async def test_route_page_splits_regressions_from_noise(demo: Demo) -> None:
    """/users/{id}'s $.plan is under Regressions with a regression badge and no rule; /orders/{id}'s
    $.generated_at is under Noise with the API's suggested rule as text; each row links to its samples."""
    users = await fetch(demo.admin + "/route?name=" + quote("/users/{id}"))
    assert users.status == 200
    changed = section(users.text, "regressions")
    assert 'data-path="$.plan"' in changed and '<span class="badge v-regression">regression</span>' in changed
    assert "$.plan" not in section(users.text, "noise")
    assert "/route?name=/users/{id}&part=body&path=$.plan#samples" in hrefs(users.text)

    orders = await fetch(demo.admin + "/route?name=" + quote("/orders/{id}"))
    noise = section(orders.text, "noise")
    assert 'data-path="$.generated_at"' in noise and '<span class="badge v-noise">noise</span>' in noise
    assert "$.generated_at" not in section(orders.text, "regressions")
    rule = next(f["rule"] for f in (await api(demo, "/api/v1/fields?route=/orders/{id}"))["fields"] if f["path"] == "$.generated_at")
    assert esc(rule) in noise


async def test_route_page_lists_samples_filtered_by_path(demo: Demo) -> None:
    """The route page lists the route's samples, each linking to /sample/{id}; with part= and path=
    exactly the samples the API keeps for that field, with a link back to all; a field without
    samples says so."""
    name = quote(HOSTILE_ROUTE)
    every = section((await fetch(demo.admin + f"/route?name={name}")).text, "samples")
    ids = re.findall(r'href="/sample/(\d+)"', every)
    assert ids
    kept = await api(demo, f"/api/v1/samples?route={name}&part=body&path={quote('$.note')}&limit=100")
    filtered = section((await fetch(demo.admin + f"/route?name={name}&part=body&path={quote('$.note')}")).text, "samples")
    assert set(re.findall(r'href="/sample/(\d+)"', filtered)) == {str(s["id"]) for s in kept["samples"]}
    assert "all fields" in filtered
    none = section((await fetch(demo.admin + "/route?name=" + quote("/users/{id}") + "&path=$.nothing")).text, "samples")
    assert "No samples kept for this field yet" in none


async def test_route_without_differences_says_so(demo: Demo) -> None:
    """/health matched every time: its page says no field differs on it, where the regressions would be."""
    page = await fetch(demo.admin + "/route?name=/health")
    assert page.status == 200
    assert "No field differs on this route: every comparison matched" in section(page.text, "regressions")


async def test_sample_page_shows_both_sides_with_the_path_marked(demo: Demo) -> None:
    """A /users/{id} sample's page shows the request, both statuses and bodies with $.plan marked on
    each side holding that side's value, the difference's verdict, and an ignore rule for $.plan
    that the config accepts under compare.rules."""
    sample = await sample_of(demo, "/users/{id}", "$.plan")
    page = await fetch(demo.admin + f"/sample/{sample['id']}")
    assert page.status == 200
    answers = section(page.text, "answers")
    marks = re.findall(r'<mark class="d-changed" data-path="\$\.plan"><span class="s">([^<]*)</span></mark>', answers)
    plans = [sample[side]["body"]["content"]["plan"] for side in ("primary", "shadow")]
    assert [html.unescape(m) for m in marks] == [f'"{plan}"' for plan in plans]
    assert section(page.text, "request").count(esc(sample["target"])) >= 1
    differences = section(page.text, "differences")
    assert "$.plan" in differences and f"v-{sample['differences'][0]['verdict']}" in differences
    rules = re.findall(r'<pre id="rule-\d+" class="yaml">(.*?)</pre>', section(page.text, "rules"), re.DOTALL)
    assert len(rules) == 1
    rule = yaml.safe_load(html.unescape(rules[0]))
    assert rule["kind"] == "ignore" and rule["path"] == "$.plan" and rule["routes"] == ["/users/{id}"]
    configuration.from_mapping({"primary": {"url": "http://127.0.0.1:1"}, "mirror": {"enabled": False}, "compare": {"rules": [rule]}})


async def test_sample_page_of_noise_offers_the_noise_rule(demo: Demo) -> None:
    """A /orders/{id} sample's suggested rule for $.generated_at is the fields view's rule, word for word."""
    sample = await sample_of(demo, "/orders/{id}", "$.generated_at")
    rule = next(f["rule"] for f in (await api(demo, "/api/v1/fields?route=/orders/{id}"))["fields"] if f["path"] == "$.generated_at")
    page = await fetch(demo.admin + f"/sample/{sample['id']}")
    assert esc(rule) in section(page.text, "rules")


async def test_hostile_names_and_bodies_render_as_text(demo: Demo) -> None:
    """A route named <script>…, a JSON string and a key that are markup and a header value with an
    event handler appear escaped on every view; the only script element is the UI's own."""
    routes = await fetch(demo.admin + "/")
    route = await fetch(demo.admin + "/route?name=" + quote(HOSTILE_ROUTE))
    sample = await sample_of(demo, HOSTILE_ROUTE, "$.note")
    shown = await fetch(demo.admin + f"/sample/{sample['id']}")
    for page in (routes, route, shown):
        assert page.status == 200
        assert esc(HOSTILE) in page.text
        assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/ui/app.js" defer>']
    for hostile in (HOSTILE_BODY, HOSTILE_HEADER):
        assert hostile not in shown.text
    assert esc(f'"{HOSTILE_BODY}"') in shown.text and esc(HOSTILE_HEADER) in shown.text
    assert "&lt;/pre&gt;&lt;script&gt;" in shown.text
    assert '<tr class="differs"><th scope="row" class="mono">X-Note</th>' in shown.text
    assert "$[&#39;odd key&#39;][1].deep" in shown.text  # the engine's path for a key that is no identifier


async def test_every_page_forbids_other_origins(demo: Demo) -> None:
    """Pages, error pages and the UI's own CSS and JS carry a Content-Security-Policy that allows
    this origin alone; no page refers to another one (no http(s):// in a src, href or CSS url)."""
    sample = await sample_of(demo, "/users/{id}", "$.plan")
    for path in ("/", "/route?name=/users/{id}", f"/sample/{sample['id']}", "/sample/999999", "/?since=xx", "/ui/app.css", "/ui/app.js"):
        page = await fetch(demo.admin + path)
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp, path
        assert "http" not in csp and "*" not in csp and "unsafe" not in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert not re.search(r'(src|href)="(https?:)?//', page.text), path
    assert "url(" not in (await fetch(demo.admin + "/ui/app.css")).text


async def test_static_files_come_from_the_package(demo: Demo) -> None:
    """/ui/app.css and /ui/app.js are served with their types (the package's files, byte for byte);
    any other /ui/ name is a 404."""
    folder = Path(__file__).resolve().parents[2] / "src" / "shadowdiff" / "ui" / "static"
    for name, kind in (("app.css", "text/css"), ("app.js", "text/javascript")):
        page = await fetch(demo.admin + "/ui/" + name)
        assert page.status == 200 and page.headers["Content-Type"].startswith(kind)
        assert page.text == (folder / name).read_text()
    assert (await fetch(demo.admin + "/ui/other.js")).status == 404


async def test_footer_names_the_store_and_its_instances(demo: Demo) -> None:
    """The routes and route pages' footer shows the store's location and each instance with when it
    was last seen, as the API lists them."""
    view = await api(demo, "/api/v1/routes")
    for path in ("/", "/route?name=/users/{id}"):
        text = (await fetch(demo.admin + path)).text
        assert f"<code>{esc(view['store'])}</code>" in text
        for instance in view["instances"]:
            assert f"<code>{esc(instance['instance'])}</code>" in text


async def test_store_off_shows_live_routes_and_says_samples_need_the_store(demo: Demo) -> None:
    """With store.enabled false, / lists the routes compared so far with no range selector and says
    history needs the store; a route page says samples need the store; /sample/1 is a 503 page saying so."""
    service = ShadowDiff(demo_config(demo.primary, demo.shadow, store={"enabled": False}))
    await service.start()
    try:
        await send(url_of(service), ["/users/7", "/users/8", "/health"])
        await settle(service)
        admin = admin_url_of(service)
        routes = await fetch(admin + "/")
        assert routes.status == 200
        assert set(route_names(routes.text)) == {"/users/{id}", "/health"}
        assert "history needs the store" in routes.text and 'aria-label="Time range"' not in routes.text
        route = await fetch(admin + "/route?name=" + quote("/users/{id}"))
        assert "Samples need the store: set <code>store.enabled: true</code>" in section(route.text, "samples")
        sample = await fetch(admin + "/sample/1")
        assert sample.status == 503 and "Samples need the store" in sample.text
    finally:
        await service.stop()


async def test_a_fresh_proxy_says_what_to_do(demo: Demo) -> None:
    """A proxy that has compared nothing yet says so on /, tells how to send traffic and links the API;
    over a range it says `in this range` and links the whole history."""
    service = ShadowDiff(demo_config(demo.primary, demo.shadow))  # the test's own state directory: an empty store
    await service.start()
    try:
        admin = admin_url_of(service)
        page = await fetch(admin + "/")
        assert page.status == 200
        assert "No comparisons yet</h2>" in page.text and "Send traffic through the proxy" in page.text
        assert "/api/v1/routes" in hrefs(page.text)
        ranged = await fetch(admin + "/?since=15m")
        assert "No comparisons yet in this range" in ranged.text and "the whole history" in ranged.text
    finally:
        await service.stop()
