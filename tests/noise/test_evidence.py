"""Each source of A/A evidence, through the proxy against real servers on 127.0.0.1:
a secondary, re-asks of the primary, and repeated requests in live traffic."""

from __future__ import annotations

from typing import Any

from tests.conftest import StartProxy, drive, metrics
from tests.noise.conftest import ROUTES, field

async def test_a_secondary_makes_a_volatile_field_noise(apps: dict[str, Any], start_proxy: StartProxy) -> None:
    """With noise.secondary, `$.ts` differs between primary and secondary on every call: once
    min_observations A/A comparisons are in, shadow comparisons differing only there are `noise`,
    not mismatches; the secondary got every mirrored request, marked as a copy."""
    proxy = await start_proxy(
        apps["primary"], apps["shadow"], routes=ROUTES,
        noise={"secondary": apps["secondary"], "min_observations": 5, "repeats": False},
    )  # fmt: skip
    await drive(proxy, [f"/stamp/{i}" for i in range(12)])
    m = metrics(proxy)
    route = "/stamp/{id}"
    assert m.value("shadowdiff_comparisons_total", route=route, outcome="mismatch") == 4  # undecided before 5 A/A
    assert m.value("shadowdiff_comparisons_total", route=route, outcome="noise") == 8
    assert m.value("shadowdiff_aa_comparisons_total", source="secondary", outcome="differ") == 12
    row = await field(proxy, route, "$.ts")
    assert (row["verdict"], row["differences"], row["noise"]) == ("noise", 12, 12)
    assert [(method, marker) for method, _, marker in apps["secondary_seen"]] == [("GET", "true")] * 12


async def test_reask_asks_the_primary_again_for_get_and_head_only(
    apps: dict[str, Any], start_proxy: StartProxy
) -> None:
    """noise.reask_rate: 1 asks the primary a second time for every mirrored GET, unmarked, and never
    for a POST even when mirror.methods mirrors POSTs; the re-asks are A/A evidence."""
    proxy = await start_proxy(
        apps["primary"], apps["shadow"], routes=ROUTES,
        mirror={"methods": ["GET", "HEAD", "POST"]}, noise={"reask_rate": 1.0, "min_observations": 5, "repeats": False},
    )  # fmt: skip
    await drive(proxy, [f"/stamp/{i}" for i in range(6)])
    await drive(proxy, ["/echo"] * 3, method="POST")
    seen = apps["primary_seen"]
    assert [path for method, path, _ in seen if method == "GET"] == [f"/stamp/{i}" for i in range(6) for _ in (0, 1)]
    assert [method for method, _, _ in seen if method == "POST"] == ["POST"] * 3
    assert all(marker is None for _, _, marker in seen)  # the marker never reaches the primary
    m = metrics(proxy)
    assert m.value("shadowdiff_aa_comparisons_total", source="reask") == 6
    assert m.value("shadowdiff_comparisons_total", route="/stamp/{id}", outcome="noise") == 2
    assert (await field(proxy, "/stamp/{id}", "$.ts"))["noise"] == 6


async def test_repeated_requests_are_evidence_with_no_configuration(
    apps: dict[str, Any], start_proxy: StartProxy
) -> None:
    """With the defaults (no secondary, no re-asks), the same GET seen again compares the primary's
    new answer with its earlier one: that is A/A evidence, and `$.ts` becomes noise."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES, noise={"min_observations": 5})
    await drive(proxy, ["/stamp/1"] * 11)
    m = metrics(proxy)
    assert m.value("shadowdiff_aa_comparisons_total", source="repeat", outcome="differ") == 10
    assert m.value("shadowdiff_comparisons_total", route="/stamp/{id}", outcome="noise") == 6  # from the 5th repeat on
    assert len(apps["primary_seen"]) == 11  # no extra call to the primary


async def test_a_repeat_is_the_same_request_for_the_same_client(
    apps: dict[str, Any], start_proxy: StartProxy
) -> None:
    """Different ids, or the same target asked with another cookie, are not repeats: no A/A evidence."""
    proxy = await start_proxy(apps["primary"], apps["shadow"], routes=ROUTES)
    await drive(proxy, [f"/stamp/{i}" for i in range(5)])
    for user in ("a", "b", "c"):
        await drive(proxy, ["/stamp/9"], headers={"Cookie": f"session={user}"})
    assert metrics(proxy).value("shadowdiff_aa_comparisons_total", source="repeat") == 0


async def test_a_secondary_that_is_down_costs_the_client_nothing(
    apps: dict[str, Any], start_proxy: StartProxy
) -> None:
    """A secondary nobody listens on: clients get the primary's answers, shadow comparisons go on,
    and the A/A errors are counted under their source."""
    from tests.backends import free_port

    proxy = await start_proxy(
        apps["primary"], apps["shadow"], routes=ROUTES,
        noise={"secondary": f"http://127.0.0.1:{free_port()}", "repeats": False},
    )  # fmt: skip
    await drive(proxy, [f"/plan/{i}" for i in range(5)])
    m = metrics(proxy)
    assert m.value("shadowdiff_comparisons_total", route="/plan/{id}", outcome="mismatch") == 5
    assert m.value("shadowdiff_aa_comparisons_total", source="secondary", outcome="error") == 5
