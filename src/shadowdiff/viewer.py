"""`shadowdiff ui`: the admin listener's UI and API over a store, with no proxy in front.

For a triage station in front of a fleet's PostgreSQL store (a role that may only read will
do), or to look again at what a run left in its SQLite file (the demo's, for one). It only
reads: a store that cannot be read, or that no proxy has created yet, is a StoreError (exit 2).
/metrics serves this process's own metrics (store read errors); /readyz is ready once
listening. `admin.tokens` apply as on a proxy's admin listener (there is nothing to change).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from shadowdiff import log
from shadowdiff.access import Access
from shadowdiff.admin import create_admin_app
from shadowdiff.config import Config, HostPort
from shadowdiff.metrics import Metrics
from shadowdiff.scrape import SharedRender
from shadowdiff.sources import StoreSource, thresholds
from shadowdiff.store.database import open_reader
from shadowdiff.store.reader import StoreReader


async def run_viewer(config: Config, *, stop: asyncio.Event | None = None) -> int:
    """Serve config.store's UI and API on config.admin.listen until SIGINT/SIGTERM (or `stop`)."""
    database = open_reader(config.store.url)
    metrics = Metrics()
    source = StoreSource(
        StoreReader(database), lambda: thresholds(config), shown=database.location.shown,
        on_error=lambda: metrics.store_errors.labels("read").inc(),
    )  # fmt: skip
    scrapes = SharedRender(metrics.exposition, config.admin.metrics_min_interval)
    app = create_admin_app(scrapes.get, ready=lambda: True, source=source, access=Access.of(config.admin))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    listen = config.admin.listen
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
        host, port = runner.addresses[0][:2]
        address = HostPort(host, port)
        log.event("info", "ui_started", admin=str(address), store=database.location.shown)
        sys.stderr.write(f"shadowdiff ui: http://{address}/ (the store {database.location.shown}); Ctrl-C stops it\n")
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        database.close()
    return 0
