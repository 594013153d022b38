"""Assembles one shadowdiff from a Config and runs its lifecycle.

`ShadowDiff.start()` opens the upstream sessions, then the admin listener, then
the traffic listener; `stop()` reverses it: readiness off, stop accepting and let
in-flight client requests finish (up to `listen.shutdown_timeout`), then drain
shadow work (up to `mirror.drain_timeout`), then close the sessions.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence

from aiohttp import web

from shadowdiff import log
from shadowdiff.admin import create_admin_app
from shadowdiff.config import Config, HostPort, mask_url
from shadowdiff.forward import MAX_HEADER_BYTES, Upstream
from shadowdiff.listener import MalformedRequests, TrafficServer
from shadowdiff.metrics import Metrics
from shadowdiff.mirror import Mirror
from shadowdiff.comparator import Comparator
from shadowdiff.publish import LogSink, Publisher, Sink, metrics_sink
from shadowdiff.routing import RouteTable
from shadowdiff.server import Proxy


class ShadowDiff:
    """One proxy process. As a worker of `serve --workers N` it binds the traffic port with
    SO_REUSEPORT (`reuse_port`) and leaves the admin listener to the supervisor (`admin=False`)."""

    def __init__(
        self, config: Config, *, extra_sinks: Sequence[Sink] = (), reuse_port: bool = False, admin: bool = True
    ) -> None:
        self.config = config
        self._reuse_port = reuse_port
        self._serve_admin = admin
        self.metrics = Metrics()
        self.routes = RouteTable(config.routes)
        self.primary = Upstream(
            "primary",
            config.primary.url,
            connect_timeout=config.primary.connect_timeout,
            read_timeout=config.primary.timeout,
            total_timeout=None,  # a long download is fine while bytes keep coming
            max_connections=config.primary.max_connections,
        )
        self.shadow = Upstream(
            "shadow",
            config.shadow.url,
            connect_timeout=config.shadow.connect_timeout,
            read_timeout=None,
            total_timeout=config.shadow.timeout,  # shadow work is bounded end to end
            max_connections=config.mirror.max_in_flight,
        )
        self.comparator = Comparator(config.compare)
        self.mirror = Mirror(
            config.mirror,
            config.shadow,
            shadow=self.shadow,
            metrics=self.metrics,
            publisher=Publisher([metrics_sink(self.metrics), LogSink(config.logging), *extra_sinks]),
            comparator=self.comparator,
            compare_body_bytes=config.compare.max_body_bytes,
        )
        self.proxy = Proxy(config, metrics=self.metrics, routes=self.routes, primary=self.primary, mirror=self.mirror)
        self.ready = False
        self._traffic: web.BaseRunner | None = None
        self._admin: web.BaseRunner | None = None
        self._malformed: MalformedRequests | None = None

    async def start(self) -> None:
        """Open sessions and listeners; on failure (a port taken) close what was opened."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        await self.primary.start()
        await self.shadow.start()
        if self._serve_admin:
            self._admin = web.AppRunner(
                create_admin_app(self.metrics.exposition, ready=lambda: self.ready), handle_signals=False, access_log=None
            )
            await self._admin.setup()
            await web.TCPSite(self._admin, config.admin.listen.host, config.admin.listen.port).start()
        server = TrafficServer(
            self.proxy.handle,
            max_connections=config.listen.max_connections,
            on_shed=self.metrics.connections_shed.inc,
            auto_decompress=False,  # relay request bodies exactly as sent
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            # Closes a connection idle between requests, or still short of a whole
            # request head (slowloris), this long after it opened or last answered.
            keepalive_timeout=config.listen.idle_timeout,
            # After a 408/413 the unread rest of a body is drained this long at most.
            lingering_time=2.0,
            access_log=logging.getLogger("aiohttp.access") if config.logging.access_log else None,
        )
        self._malformed = MalformedRequests(self.metrics.malformed_requests.inc)
        self._malformed.attach(logging.getLogger("aiohttp.server"))
        # aiohttp waits its timeout for in-flight handlers, then as long again for the
        # ones it cancelled: half each keeps the whole stop within listen.shutdown_timeout.
        self._traffic = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=config.listen.shutdown_timeout / 2
        )
        await self._traffic.setup()
        await web.TCPSite(
            self._traffic, config.listen.address.host, config.listen.address.port, reuse_port=self._reuse_port or None
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
        )

    async def _probe_shadow(self) -> None:
        """Say at start-up if the shadow cannot be reached; the primary is served regardless."""
        url = self.shadow.base
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(url.host, url.port), self.config.shadow.connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            self.metrics.set_up("shadow", False)
            log.event(
                "warning",
                "shadow_unreachable",
                shadow=mask_url(self.config.shadow.url),
                error=str(exc) or type(exc).__name__,
                note="serving the primary; shadow copies will be counted as errors until it answers",
            )
            return
        writer.close()
        self.metrics.set_up("shadow", True)

    async def stop(self) -> None:
        """Stop accepting, finish client requests, drain shadow work, close. Idempotent."""
        self.ready = False
        traffic, self._traffic = self._traffic, None
        admin, self._admin = self._admin, None
        if traffic is not None:
            await traffic.cleanup()  # stops accepting; waits for in-flight client requests
        cancelled = await self.mirror.drain()
        self.comparator.close()
        await self.primary.close()
        await self.shadow.close()
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


def tune_gc() -> None:
    """Make garbage collection cheap for a long-running proxy (call once started).

    Measured under `make bench` load (row 3): 660 collections in 9 s took 0.33 s,
    about 3.5% of the proxy's CPU, mostly full collections walking the ~100k objects
    built at start-up (aiohttp, prometheus-client, config) that live for ever.
    `gc.freeze()` moves those out of the collector's sight, and a larger first
    threshold lets short-lived cycles (futures, exceptions) go in fewer passes.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def _bound(runner: web.BaseRunner | None) -> HostPort:
    assert runner is not None and runner.addresses, "not started"
    host, port = runner.addresses[0][:2]
    return HostPort(host, port)
