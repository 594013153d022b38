"""Assembles one shadowdiff from a Config and runs its lifecycle.

`ShadowDiff.start()` opens the upstreams, then the admin listener, then the traffic
listener; `stop()` reverses it: readiness off, stop accepting and let in-flight
client requests finish (up to `listen.shutdown_timeout`), then drain shadow work
(up to `mirror.drain_timeout`), then close the upstreams and the comparison worker.
`apply()` takes a new config while serving (the keys that may change live).

`serve()` is the serve loop both `shadowdiff serve` and each `--workers` worker run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from shadowdiff import log
from shadowdiff.access import Access
from shadowdiff.admin import create_admin_app
from shadowdiff.buffers import BufferBudget
from shadowdiff.config import Config, HostPort, mask_url
from shadowdiff.controls import Controls, on_sighup
from shadowdiff.experiment.breaker import Breaker
from shadowdiff.experiment.comparator import Comparator
from shadowdiff.experiment.lanes import Lane
from shadowdiff.experiment.mirror import Mirror
from shadowdiff.http.upstream import Limits, Upstream
from shadowdiff.loop import tune_gc
from shadowdiff.metrics import Metrics
from shadowdiff.model import CONTROL, REASK, SECONDARY, SHADOW, CapturedRequest
from shadowdiff.noise import shared as fields_file
from shadowdiff.noise.fields import FieldStats
from shadowdiff.noise.repeats import Repeats
from shadowdiff.noise.stage import NoiseStage
from shadowdiff.proxy.access_log import access_log_class
from shadowdiff.proxy.handler import Proxy
from shadowdiff.proxy.listener import MalformedRequests, TrafficServer
from shadowdiff.publish.pipeline import OffLoopSink, Publisher, Sink
from shadowdiff.publish.redact import Redactor
from shadowdiff.publish.sinks import LogSink
from shadowdiff.record.recorder import Recorder
from shadowdiff.runtime import RuntimeHolder
from shadowdiff.scrape import SharedRender
from shadowdiff.sources import LiveSource, StoreSource, thresholds
from shadowdiff.store.attach import AttachedStore


# What a client connection buffers of a body before it stops reading (aiohttp pauses at twice
# this; one read of the socket, up to 256 KiB, may come on top).
READ_BUFFER_BYTES = 16 * 1024
# A worker shares its field statistics every this many seconds: a snapshot at the caps takes
# ~25 ms of the loop (shadowdiff.noise.fields), so not every second as the metrics are.
FIELDS_EVERY = 5


class ShadowDiff:
    """One proxy process. As a worker of `serve --workers N` it binds the traffic port with
    SO_REUSEPORT (`reuse_port`) and leaves the admin listener to the supervisor (`admin=False`)."""

    def __init__(
        self, config: Config, *, extra_sinks: Sequence[Sink] = (), reuse_port: bool = False, admin: bool = True,
        load: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        self.runtime = RuntimeHolder(config)
        self._reuse_port = reuse_port
        self._serve_admin = admin
        # The admin listener's tokens (ConfigError when one cannot be read) and the live controls;
        # `load` reads the config file again (a reload).
        self.access = Access.of(config.admin) if admin else Access([])
        self.controls = Controls(config, self._apply_live, load=load)
        self.metrics = metrics = Metrics()
        metrics.mirroring(config.mirror)
        self.scrapes = SharedRender(metrics.exposition, config.admin.metrics_min_interval)
        self.primary = Upstream(CONTROL, config.primary.url, Limits.primary(config))
        redactor = Redactor(config.logging)  # one, for every sink and the comparison worker
        self.comparator = Comparator(config.compare, redactor)
        noise = config.noise
        self.fields = FieldStats(
            thresholds(config),
            max_fields=noise.max_fields,
            max_paths_per_route=noise.max_paths_per_route,
            redact=lambda difference: self.publisher.redactor.difference(difference),  # the live redactor
        )
        metrics.max_field_series = noise.max_field_series
        stage = NoiseStage(self.fields, on_field=metrics.field_difference)
        sinks: list[Sink] = [LogSink(), *extra_sinks]
        self.store: AttachedStore | None = None
        self.source: LiveSource | StoreSource = LiveSource(self.fields.snapshot)
        if config.store.enabled:
            self.store = AttachedStore.open(config.store, self.fields, metrics, lambda: self.publisher.redactor.spec)
            sinks.append(self.store.sink)
            self.source = self.store.source
        self.recorder = Recorder(
            config.record, lambda: self.publisher.redactor.spec, on_written=metrics.recorded.inc, on_error=metrics.record_errors.inc
        ) if config.record.enabled else None  # fmt: skip
        if self.recorder is not None:
            sinks.append(OffLoopSink(self.recorder, capacity=config.record.max_queued))
        self.publisher = Publisher(metrics, redactor, sinks, stages=[stage])
        self.publisher.listed = config.compare.max_differences

        def skipped(reason: str) -> None:
            metrics.mirror_skipped.labels(reason).inc()

        def aa_skipped(source: str, reason: str) -> None:
            metrics.aa_skipped.labels(source, "unhealthy" if reason.endswith("_unhealthy") else reason).inc()

        self.shadow = self._lane(SHADOW, config.shadow.url, on_skip=skipped)
        # A/A lanes (noise evidence): each under the shadow's bounds, with its own pool and breaker.
        # The re-ask lane always exists (noise.reask_rate may change live); at rate 0 it takes nothing.
        self.reask = self._lane(
            REASK, config.primary.url, on_skip=lambda reason: aa_skipped(REASK, reason), accepts=self._reasked
        )
        self.secondary = (
            self._lane(SECONDARY, noise.secondary, on_skip=lambda reason: aa_skipped(SECONDARY, reason))
            if noise.secondary
            else None
        )
        self.budget = BufferBudget(config.mirror.max_buffered_bytes)
        self.mirror = Mirror(
            [self.shadow, *filter(None, (self.secondary, self.reask))],
            comparator=self.comparator,
            publisher=self.publisher,
            metrics=metrics,
            on_skip=skipped,
            budget=self.budget,
            repeats=_repeats(config),
            on_aa_skip=aa_skipped,
        )
        self.proxy = Proxy(self.runtime, metrics=metrics, primary=self.primary, mirror=self.mirror, budget=self.budget)
        self._random = random.random
        self.ready = False
        self._traffic: web.BaseRunner | None = None
        self._admin: web.BaseRunner | None = None
        self._malformed: MalformedRequests | None = None

    async def flush_store(self) -> None:
        """Write what this process counted so far to the store, if there is one."""
        if self.store is not None:
            await self.store.flush()

    def _lane(self, name: str, url: str, *, on_skip: Callable[[str], None], **options: Any) -> Lane:
        """A background lane under the shadow's bounds. A re-ask goes as the client's request
        would (no marker, the client's Host); a shadow or a secondary is marked and gets the
        shadow's Host policy."""
        config, reask = self.config, name == REASK
        return Lane(
            name,
            Upstream(name, url, Limits.shadow(config)),
            max_in_flight=config.mirror.max_in_flight,
            breaker=Breaker(config.mirror.breaker_failures, config.mirror.breaker_cooldown),
            marker=None if reask else (config.mirror.marker_header, config.mirror.marker_value),
            client_host=reask or config.shadow.host_header == "client",
            metrics=self.metrics,
            on_skip=on_skip,
            **options,
        )

    def _reasked(self, request: CapturedRequest) -> bool:
        """noise.reask_rate of mirrored GET and HEAD requests, never another method."""
        rate = self.runtime.current.config.noise.reask_rate
        return rate > 0.0 and request.method in ("GET", "HEAD") and self._random() < rate

    @property
    def lanes(self) -> tuple[Lane, ...]:
        return self.mirror.lanes

    def apply(self, config: Config) -> None:
        """Serve with `config` from the next request on. Raises runtime.RestartRequired, and
        changes nothing, when it differs in keys that need a restart."""
        self.runtime.swap(config)
        self.config = config
        self.primary.set_timeouts(
            connect_timeout=config.primary.connect_timeout, read_timeout=config.primary.timeout, total_timeout=None
        )
        for lane in self.lanes:
            lane.upstream.set_timeouts(
                connect_timeout=config.shadow.connect_timeout, read_timeout=None, total_timeout=config.shadow.timeout
            )
        self.comparator.configure(config.compare)
        self.publisher.listed = config.compare.max_differences
        self.fields.thresholds = thresholds(config)
        if (self.mirror.repeats is None) != (not config.noise.repeats) or (
            self.mirror.repeats is not None
            and (self.mirror.repeats.window, self.mirror.repeats.max_bytes)
            != (config.noise.repeat_window, config.noise.repeat_max_bytes)
        ):
            self.mirror.repeats = _repeats(config)
        self.publisher.redactor = self.comparator.redactor = Redactor(config.logging)
        if self.store is not None:
            self.store.apply(config.store)
        self.budget.limit = config.mirror.max_buffered_bytes
        self.scrapes.min_interval = config.admin.metrics_min_interval
        log.set_level(config.logging.level)
        self.metrics.mirroring(config.mirror)

    async def _apply_live(self, config: Config) -> None:
        self.apply(config)

    async def start(self) -> None:
        """Open upstreams and listeners; on failure (a port taken) close what was opened."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        if self.store is not None:
            self.store.start()
        await self.primary.start()
        for lane in self.lanes:
            await lane.upstream.start()
        if self._serve_admin:
            self._admin = web.AppRunner(
                create_admin_app(
                    self.scrapes.get, ready=lambda: self.ready, source=self.source, controls=self.controls, access=self.access
                ),
                handle_signals=False,
                access_log=None,
            )
            await self._admin.setup()
            await web.TCPSite(self._admin, config.admin.listen.host, config.admin.listen.port).start()
        listen = config.listen
        server = TrafficServer(
            self.proxy.handle,
            max_connections=listen.max_connections,
            max_head_bytes=listen.max_head_bytes,
            head_timeout=listen.head_timeout,
            on_shed=self.metrics.connections_shed.inc,
            on_evicted=lambda reason: self.metrics.connections_evicted.labels(reason).inc(),
            on_head_timeout=self.metrics.head_timeouts.inc,
            auto_decompress=False,  # relay request bodies exactly as sent
            max_line_size=listen.max_header_line_bytes,
            max_field_size=listen.max_header_line_bytes,
            max_headers=listen.max_headers,
            # Closes a connection idle between requests this long after it opened or last
            # answered (a head under way has its own, shorter deadline: listen.head_timeout).
            keepalive_timeout=listen.idle_timeout,
            # After a 408/413 the unread rest of a body is drained this long at most.
            lingering_time=2.0,
            read_bufsize=READ_BUFFER_BYTES,
            access_log=logging.getLogger("aiohttp.access") if config.logging.access_log else None,
            access_log_class=access_log_class(lambda: self.publisher.redactor),
        )
        self._malformed = MalformedRequests(self.metrics.malformed_requests.inc)
        self._malformed.attach(logging.getLogger("aiohttp.server"))
        # aiohttp waits its timeout for in-flight handlers, then as long again for the
        # ones it cancelled: half each keeps the whole stop within listen.shutdown_timeout.
        self._traffic = web.ServerRunner(server, handle_signals=False, shutdown_timeout=listen.shutdown_timeout / 2)
        await self._traffic.setup()
        await web.TCPSite(
            self._traffic, listen.address.host, listen.address.port, reuse_port=self._reuse_port or None
        ).start()
        self.ready = True
        if config.mirror.enabled:
            await self._probe_shadow()
        log.event(
            "info",
            "started",
            listen=str(self.address),
            admin=str(self.admin_address) if self._admin is not None else None,
            primary=mask_url(config.primary.url),
            shadow=mask_url(config.shadow.url) if config.mirror.enabled else None,
            mirror=config.mirror.enabled,
            secondary=mask_url(config.noise.secondary) if config.noise.secondary else None,
            reask_rate=config.noise.reask_rate,
            repeats=config.noise.repeats,
        )

    async def _probe_shadow(self) -> None:
        """Say at start-up if the shadow cannot be reached; the primary is served regardless."""
        url = self.shadow.upstream.base
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port), self.config.shadow.connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self.metrics.set_up(SHADOW, False)
            log.event(
                "warning",
                "shadow_unreachable",
                shadow=mask_url(self.config.shadow.url),
                error=str(exc) or type(exc).__name__,
                note="serving the primary; shadow copies will be counted as errors until it answers",
            )
            return
        writer.close()
        self.metrics.set_up(SHADOW, True)

    async def stop(self) -> None:
        """Stop accepting, finish client requests, drain shadow work, close. Idempotent."""
        self.ready = False
        traffic, self._traffic = self._traffic, None
        admin, self._admin = self._admin, None
        if traffic is not None:
            await traffic.cleanup()  # stops accepting; waits for in-flight client requests
        cancelled = await self.mirror.drain(self.config.mirror.drain_timeout)
        await asyncio.to_thread(self.publisher.close)  # sinks' own threads: off the loop
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.close)  # the last file's gzip trailer
        if self.store is not None:
            await self.store.close()
        await self.comparator.close()
        await self.primary.close()
        for lane in self.lanes:
            await lane.upstream.close()
        if admin is not None:
            await admin.cleanup()
        if self._malformed is not None:
            self._malformed.detach()
            self._malformed = None
        if traffic is not None:
            log.event("info", "stopped", shadow_cancelled=cancelled)

    @property
    def address(self) -> HostPort:
        return _bound(self._traffic)

    @property
    def admin_address(self) -> HostPort:
        return _bound(self._admin)


def _repeats(config: Config) -> Repeats | None:
    noise = config.noise
    return Repeats(noise.repeat_window, noise.repeat_max_bytes) if noise.repeats else None


async def serve(
    config: Config,
    stop: asyncio.Event,
    *,
    reuse_port: bool = False,
    admin: bool = True,
    on_ready: Callable[[ShadowDiff], None] | None = None,
    refresh_metrics: bool = False,
    load: Callable[[], Config] | None = None,
) -> int:
    """Run one proxy until `stop` is set; the exit code. `load` reads its config file again
    (reload: POST /api/v1/reload, and SIGHUP).

    `on_ready(service)` runs once it is listening; with `refresh_metrics`, values kept
    outside the collectors reach them each second (a worker's files, which the
    supervisor reads, are only written that way).
    """
    service = ShadowDiff(config, reuse_port=reuse_port, admin=admin, load=load)
    if admin:  # SIGHUP reads the file again, as POST /api/v1/reload does (refused, never fatal, without one)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup, service.controls)
    # With the store off, the supervisor's /api/v1 reads each worker's field statistics from a
    # file there; with it on, from the store.
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if refresh_metrics and not config.store.enabled else None
    try:
        await service.start()
        tune_gc()
        if on_ready is not None:
            on_ready(service)
        ticks = 0
        while not stop.is_set():
            if refresh_metrics:
                service.metrics.refresh()
            ticks += 1
            if shared and ticks % FIELDS_EVERY == 1:
                await asyncio.to_thread(fields_file.write, shared, service.fields.snapshot())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 if refresh_metrics else None)
        log.event("info", "stopping")
    finally:
        await service.stop()
        if refresh_metrics:
            service.metrics.refresh()
            if shared:
                fields_file.write(shared, service.fields.snapshot())
    return 0


def _bound(runner: web.BaseRunner | None) -> HostPort:
    assert runner is not None and runner.addresses, "not started"
    host, port = runner.addresses[0][:2]
    return HostPort(host, port)
