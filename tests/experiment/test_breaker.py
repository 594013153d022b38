"""The shadow circuit breaker: open after repeated failures, probe after the cooldown."""

from __future__ import annotations

import aiohttp

from shadowdiff.experiment.breaker import Breaker
from tests.backends import Backend, free_port
from tests.conftest import StartProxy, metrics, settle, url_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    """N failures in a row open it; after the cooldown exactly one probe goes; its success closes it."""
    clock = Clock()
    breaker = Breaker(3, 5.0, clock=clock)
    for _ in range(2):
        breaker.record(False)
    assert breaker.allow() and not breaker.is_open
    breaker.record(False)
    assert breaker.is_open and not breaker.allow()
    clock.now += 5.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record(True)
    assert not breaker.is_open and breaker.allow()


def test_failed_probe_reopens_for_another_cooldown() -> None:
    """A probe that fails opens the breaker again at once, without needing N more failures."""
    clock = Clock()
    breaker = Breaker(2, 1.0, clock=clock)
    breaker.record(False)
    breaker.record(False)
    clock.now += 1.0
    assert breaker.allow()
    breaker.record(False)
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()


def test_a_success_resets_the_count_and_zero_disables() -> None:
    """Failures must be consecutive; threshold 0 never opens."""
    breaker = Breaker(2, 1.0)
    for ok in (False, True, False, True):
        breaker.record(ok)
    assert not breaker.is_open
    never = Breaker(0, 1.0)
    for _ in range(100):
        never.record(False)
    assert never.allow()


async def test_refusing_shadow_is_left_alone_after_the_threshold(
    primary: Backend, start_proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With a refusing shadow, only breaker_failures copies are sent; the rest are counted shadow_unhealthy."""
    proxy = await start_proxy(
        primary.url, f"http://127.0.0.1:{free_port()}", mirror={"breaker_failures": 5, "breaker_cooldown": 60}
    )
    for i in range(30):
        async with client.get(url_of(proxy) + f"/x/{i}") as response:
            assert response.status == 200
        await settle(proxy)  # one at a time, so the count is exact
    m = metrics(proxy)
    assert m.value("shadowdiff_upstream_errors_total", upstream="shadow", kind="connect") == 5
    assert m.value("shadowdiff_mirror_skipped_total", reason="shadow_unhealthy") == 25
