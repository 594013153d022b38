"""The runtime snapshot: swapped whole, caches kept when their inputs did not change, applied to a running proxy."""

from __future__ import annotations

import aiohttp
import pytest

from shadowdiff import config as configuration
from shadowdiff.runtime import RestartRequired, RuntimeHolder
from tests.backends import Backend
from tests.conftest import StartProxy, metrics, proxy_config, settle, url_of

BASE = {"primary": {"url": "http://127.0.0.1:8000"}, "shadow": {"url": "http://127.0.0.1:8001"}, "routes": ["/u/{id}"]}


def test_swap_replaces_the_snapshot_and_keeps_unchanged_caches() -> None:
    """A new sample rate gives a new snapshot; the route table (and the routes it has seen) and the rules are kept."""
    holder = RuntimeHolder(configuration.from_mapping(BASE))
    before = holder.current
    before.routes.route("/other/path")
    after = holder.swap(configuration.from_mapping({**BASE, "mirror": {"sample_rate": 0.5}}))
    assert holder.current is after is not before
    assert after.config.mirror.sample_rate == 0.5
    assert after.routes is before.routes and after.rules is before.rules


def test_swap_rebuilds_what_changed() -> None:
    """New route templates give a new route table; new rules a new rule set."""
    holder = RuntimeHolder(configuration.from_mapping(BASE))
    before = holder.current
    after = holder.swap(
        configuration.from_mapping(
            {**BASE, "routes": ["/v/{id}"], "compare": {"rules": [{"kind": "ignore", "path": "$.t", "reason": "time"}]}}
        )
    )
    assert after.routes is not before.routes and after.routes.route("/v/7") == "/v/{id}"
    assert after.rules is not before.rules and after.rules.for_route("/x").ignore


def test_swap_refuses_restart_keys_and_changes_nothing() -> None:
    """A new listen address is refused by name; the current snapshot stays."""
    holder = RuntimeHolder(configuration.from_mapping(BASE))
    before = holder.current
    with pytest.raises(RestartRequired) as refused:
        holder.swap(configuration.from_mapping({**BASE, "listen": {"address": "127.0.0.1:1"}}))
    assert refused.value.keys == ["listen.address"]
    assert holder.current is before


async def test_apply_takes_effect_on_the_next_request(
    primary: Backend, shadow: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A running proxy given sample_rate 0 mirrors nothing from the next request on, and counts it sampled_out."""
    proxy = await start_proxy(primary.url, shadow.url)
    async with client.get(url_of(proxy) + "/a") as response:
        await response.read()
    await settle(proxy)
    live = proxy.config
    proxy.apply(proxy_config(primary.url, shadow.url, mirror={"sample_rate": 0.0}, listen={"address": str(live.listen.address)},
                             admin={"listen": str(live.admin.listen)}))  # fmt: skip
    for _ in range(3):
        async with client.get(url_of(proxy) + "/a") as response:
            await response.read()
    await settle(proxy)
    assert len(shadow.seen) == 1 and len(primary.seen) == 4
    assert metrics(proxy).value("shadowdiff_mirror_skipped_total", reason="sampled_out") == 3
