"""Verdicts and the `noise` outcome end to end: real primary, candidate and re-asks on 127.0.0.1."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import StartProxy, api, drive, metrics
from tests.noise.conftest import ROUTES, field

OUTCOMES = ("match", "mismatch", "ignored", "noise", "shadow_error")
REASK = {"reask_rate": 1.0, "min_observations": 5, "repeats": False}


async def test_a_rare_regression_below_the_absolute_floor_is_a_regression(apps, start_proxy: StartProxy) -> None:
    """The candidate differs once in 50 calls, under an absolute floor of 5 % that would call it noise
    in Diffy; the A/A evidence never differed there, so it is a regression and a mismatch."""
    proxy = await start_proxy(
        apps["primary"], apps["shadow"], routes=ROUTES, noise={**REASK, "absolute_threshold": 0.05}
    )
    await drive(proxy, ["/rare/1"] * 50)
    row = await field(proxy, "/rare/{id}", "$.total")
    assert (row["verdict"], row["differences"], row["noise"]) == ("regression", 1, 0)
    assert metrics(proxy).value("shadowdiff_comparisons_total", route="/rare/{id}", outcome="mismatch") == 1


async def test_a_field_both_noisy_and_broken_is_a_regression(apps, start_proxy: StartProxy) -> None:
    """`rank` differs in about half the A/A comparisons; the candidate breaks it in all of them:
    the raw rate passes the noise rate by more than 20 %, so it is a regression, never noise."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise=REASK)
    await drive(proxy, ["/flaky/1"] * 30)
    row = await field(proxy, "/flaky/{id}", "$.rank")
    assert 0 < row["noise"] < 30 and row["differences"] == 30
    assert row["verdict"] == "regression"
    assert metrics(proxy).value("shadowdiff_comparisons_total", route="/flaky/{id}", outcome="noise") == 0


async def test_a_field_removed_on_every_response_is_a_regression(apps, start_proxy: StartProxy) -> None:
    """`extra` changes in every A/A comparison, but the candidate removes it: a removal never seen in
    A/A is a regression (verdicts are per kind), while `$.ts` beside it is noise."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise=REASK)
    await drive(proxy, ["/gone/1"] * 10)
    assert (await field(proxy, "/gone/{id}", "$.extra"))["verdict"] == "regression"
    assert (await field(proxy, "/gone/{id}", "$.ts"))["verdict"] == "noise"
    assert metrics(proxy).value("shadowdiff_comparisons_total", route="/gone/{id}", outcome="mismatch") == 10


async def test_noise_comparisons_are_counted_apart_and_never_logged(
    apps, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per route mirrored == match + mismatch + ignored + noise + shadow_error; a noise comparison
    adds nothing to shadowdiff_differences_total and writes no mismatch line; a mismatch line gives
    each difference its verdict, the regression first."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise=REASK)
    await drive(proxy, ["/stamp/1"] * 10 + ["/plan/1"] * 10)
    m = metrics(proxy)
    for route in ("/stamp/{id}", "/plan/{id}"):
        parts = [m.value("shadowdiff_comparisons_total", route=route, outcome=o) for o in OUTCOMES]
        assert m.value("shadowdiff_mirrored_total", route=route) == sum(parts) == 10, route
    assert m.value("shadowdiff_comparisons_total", route="/stamp/{id}", outcome="noise") == 6
    assert m.value("shadowdiff_differences_total", route="/stamp/{id}") == 4  # the 4 undecided ones only
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"event":"mismatch"' in line]
    assert sum(line["route"] == "/stamp/{id}" for line in lines) == 4
    plan = [line for line in lines if line["route"] == "/plan/{id}"]
    assert len(plan) == 10
    assert [(d["path"], d["verdict"]) for d in plan[-1]["differences"]] == [("$.plan", "regression"), ("$.ts", "noise")]


async def test_differences_past_max_differences_are_all_counted(
    apps, start_proxy: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """25 noisy fields and one real change, compare.max_differences 5: the field statistics count all
    26 paths, the real change still decides the outcome, and the log lists 5 with the count found."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise=REASK, compare={"max_differences": 5})
    await drive(proxy, ["/wide/1"] * 8)
    status, body = await api(proxy, "/api/v1/fields?route=/wide/{id}")
    assert status == 200 and len(body["fields"]) == 26
    assert (await field(proxy, "/wide/{id}", "$.z"))["verdict"] == "regression"
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines() if '"event":"mismatch"' in line]
    assert len(lines) == 8
    assert len(lines[-1]["differences"]) == 5 and lines[-1]["differences_found"] == 26
    assert lines[-1]["differences"][0]["path"] == "$.z"


async def test_urls_the_host_policy_explains_are_not_mismatches(apps, start_proxy: StartProxy) -> None:
    """The service writes absolute URLs from the Host it was asked with: with shadow.host_header: own
    the shadow's carry its own authority. Those are recognised (ignored, counted, with a hint naming
    shadow.host_header: client), not mismatches."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise={"repeats": False})
    await drive(proxy, ["/links/1"] * 3)
    m = metrics(proxy)
    assert m.value("shadowdiff_comparisons_total", route="/links/{id}", outcome="ignored") == 3
    status, body = await api(proxy, "/api/v1/routes")
    assert status == 200
    route = next(r for r in body["routes"] if r["route"] == "/links/{id}")
    assert route["host_explained"]["count"] >= 3
    assert "shadow.host_header: client" in route["host_explained"]["hint"]


async def test_field_series_past_the_cap_go_to_other(apps, start_proxy: StartProxy) -> None:
    """noise.max_field_series 3: shadowdiff_field_differences_total has 3 paths of its own, the rest
    under path="other", the sum still every difference."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise={**REASK, "max_field_series": 3})
    await drive(proxy, ["/wide/1"] * 2)
    m = metrics(proxy)
    paths = m.label_values("shadowdiff_field_differences_total", "path")
    assert len(paths - {"other"}) == 3 and "other" in paths
    assert m.value("shadowdiff_field_differences_total") == 2 * 26


async def test_an_unknown_route_is_a_json_404(apps, start_proxy: StartProxy) -> None:
    """GET /api/v1/fields for a route nobody has seen is a 404 with a JSON error."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES)
    status, body = await api(proxy, "/api/v1/fields?route=/nobody")
    assert status == 404 and "error" in body
