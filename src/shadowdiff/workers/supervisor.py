"""`shadowdiff serve --workers N`: N proxy processes sharing one port.

The supervisor (the process the user started) does no proxying. It reserves the
traffic port, starts N workers, serves the admin listener, relays the workers'
log lines and restarts a worker that dies. Each worker is a whole shadowdiff
(`ShadowDiff(..., reuse_port=True, admin=False)`) binding the port with
SO_REUSEPORT, so the kernel spreads new connections over them. Every bound is
per worker: listen.max_connections, primary.max_connections, mirror.max_in_flight,
the circuit breaker and the comparison worker.

Metrics use prometheus-client's multiprocess mode: each worker writes its values
to files in a private directory (PROMETHEUS_MULTIPROC_DIR, set for the workers
only) and the supervisor's /metrics sums them, so a dashboard sees one proxy.
Gauges say how they combine (`multiprocess_mode` in metrics.py). Field statistics
(/api/v1) go the same way: each worker writes a snapshot there each second
(`noise.shared`) and the supervisor's API shows their sum when the store is off. With
the store on, each worker writes to it as its own instance and the supervisor's API
and UI read it, like any instance of a fleet. Each worker draws its noise verdicts
from its own evidence.

The supervisor talks to each worker over the worker's stdin, in frames
(`shadowdiff.frames`): first the config and the ready pipe, then any later config
(`Supervisor.update()`: the live part of the config, applied by every worker
within a loop turn of receiving it). The stdin stays open for the worker's whole
life: EOF tells it the supervisor is gone.

Start-up: a worker reports ready on a pipe once its listener is up; if any worker
exits before that, the supervisor stops the others and exits 1. Shutdown
(SIGTERM/SIGINT): /readyz turns 503, every worker gets SIGTERM and runs its own
graceful stop (listen.shutdown_timeout, then mirror.drain_timeout); stragglers
are killed after both plus a margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from shadowdiff import frames, log
from shadowdiff.access import Access
from shadowdiff.admin import create_admin_app
from shadowdiff.config import Config, HostPort
from shadowdiff.config.live import restart_changes
from shadowdiff.controls import Controls, on_sighup
from shadowdiff.noise import shared
from shadowdiff.noise.fields import FieldStats
from shadowdiff.noise.merge import merge
from shadowdiff.runtime import RestartRequired
from shadowdiff.scrape import SharedRender
from shadowdiff.sources import LiveSource, StoreSource, thresholds
from shadowdiff.store.database import open_store
from shadowdiff.store.reader import StoreReader

READY_DEADLINE = 60.0  # seconds for a worker to start listening
RESTART_DELAY = 1.0  # seconds before a dead worker is replaced (doubling while it keeps dying)
MAX_RESTART_DELAY = 30.0
STABLE_SECONDS = 60.0  # a worker that lived this long starts the delay afresh
STOP_MARGIN = 5.0  # seconds past shutdown_timeout + drain_timeout before a worker is killed
_LOG_LINE_LIMIT = 16 * 1024 * 1024  # a mismatch line is long, never this long


class WorkerFailed(Exception):
    """A worker exited before it was ready (port in use, bad environment...)."""


class Worker:
    """One worker process and the pipes it reports on."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.process: asyncio.subprocess.Process | None = None
        self.ready = False
        self.started = False  # its start frame is written
        self._relay: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, config: Callable[[], Config], metrics_dir: str) -> None:
        """Start the process and wait until it listens (raises WorkerFailed if it dies first).
        `config()` is read when the start frame is written: a change made while the process was
        being created is in it, and every later one reaches it by `send()`.

        Its stdin stays open for its whole life: the worker stops when it reads EOF, so
        workers never outlive a supervisor that was killed outright.
        """
        loop = asyncio.get_running_loop()
        self.started = False
        ready_read, ready_write = os.pipe()
        ready = asyncio.StreamReader()
        try:
            try:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "shadowdiff.workers.worker",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir},
                    pass_fds=(ready_write,),
                    limit=_LOG_LINE_LIMIT,
                    # Its own process group: a Ctrl-C in the terminal reaches the supervisor
                    # alone, which stops the workers in order.
                    start_new_session=True,
                )  # fmt: skip
            finally:
                os.close(ready_write)
            assert self.process.stdin is not None and self.process.stdout is not None
            self._relay = asyncio.create_task(_relay_lines(self.process.stdout), name=f"worker {self.number} log")
            pipe, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(ready), os.fdopen(ready_read, "rb", buffering=0)
            )
            ready_read = -1  # the pipe transport owns it now
            try:
                self.process.stdin.write(frames.encode(("start", config(), ready_write)))
                self.started = True  # from here on a config frame comes after the start frame
                await self.process.stdin.drain()
                said = await asyncio.wait_for(ready.read(1), READY_DEADLINE)
            except (OSError, RuntimeError, asyncio.TimeoutError):  # it died before reading, or hangs
                said = b""
            finally:
                pipe.close()
        finally:
            if ready_read >= 0:
                os.close(ready_read)
        if said != b"1":
            await self.stop(0.0)
            raise WorkerFailed(f"worker {self.number} exited before it was ready (exit code {self.process.returncode})")
        self.ready = True

    async def send(self, message: tuple) -> None:
        """One frame to a worker whose start frame is written (a starting worker applies it once
        ready); one not that far starts with the supervisor's current config; one that is gone
        or going misses it."""
        process = self.process
        if not self.started or process is None or process.stdin is None or process.returncode is not None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            process.stdin.write(frames.encode(message))
            await process.stdin.drain()

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._relay is not None:
            await self._relay  # the rest of its log
        return code

    async def stop(self, timeout: float) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None if it was still starting)."""
        process = self.process
        if process is None:
            return None
        was_ready, self.ready = self.ready, False
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        code = await self.wait()
        return code if was_ready else None


async def _relay_lines(stream: asyncio.StreamReader) -> None:
    """A worker's stdout, line by line, onto ours: whole lines never interleave."""
    skipping = False  # inside a line past the limit: drop up to its end
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # past the limit: asyncio dropped what it had buffered
            skipping = True
            continue
        if not line:
            return
        if skipping:
            skipping = not line.endswith(b"\n")
            continue
        log.emit_line(line if line.endswith(b"\n") else line + b"\n")


def reserve_port(address: HostPort) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT: the address is checked and held, port 0 resolved.

    A bound socket that does not listen takes no connections; the workers' listening
    sockets, bound with the same option by the same user, share the port.
    """
    if address.port:
        # First without SO_REUSEPORT: a port another shadowdiff (or anything) listens on
        # with that option would otherwise be shared with it, not refused.
        _bind(address, reuse_port=False).close()
    return _bind(address, reuse_port=True)


def _bind(address: HostPort, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {address.host}:{address.port}: {exc.strerror}") from None
    return sock


class _AddSupervisorDrops:
    """The workers' summed metrics, plus the log lines the supervisor itself dropped.

    Worker lines pass through the supervisor's bounded log queue: when its stdout does
    not keep up, the drops happen there, not in any worker.
    """

    def __init__(self, workers: Any) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Any]:
        dropped = log.dropped()
        for family in self._workers.collect():
            if family.name == "shadowdiff_log_lines_dropped" and dropped:
                family.samples = [s._replace(value=s.value + dropped) if s.name.endswith("_total") else s for s in family.samples]
                dropped = 0
            yield family


class Supervisor:
    def __init__(self, config: Config, *, load: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.access = Access.of(config.admin)  # ConfigError when a token cannot be read
        self.controls = Controls(config, self.update, load=load)  # changes reach every worker
        self.workers = [Worker(n) for n in range(config.listen.workers)]
        self.stopping = False
        self._started = False
        self._metrics_dir = ""
        self._admin: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._worker_config = config  # with the reserved port: what workers are started with
        # Summing the workers' files is heavier than one process's render, and the loop that
        # would do it relays every worker's log lines: in a thread, once per interval.
        self.scrapes = SharedRender(self.exposition, config.admin.metrics_min_interval)
        self.source: LiveSource | StoreSource = LiveSource(self.fields)
        if config.store.enabled:  # opened (and created) here: StoreError before any worker starts
            database = open_store(config.store.url)
            self.source = StoreSource(StoreReader(database), lambda: thresholds(self.config), shown=database.location.shown)

    def ready(self) -> bool:
        """Every worker started once, and at least one is serving (others may be restarting)."""
        return self._started and not self.stopping and any(worker.ready for worker in self.workers)

    def detail(self) -> str:
        return f"workers ready: {sum(worker.ready for worker in self.workers)}/{len(self.workers)}"

    def fields(self) -> dict[str, Any]:
        """The workers' field statistics summed from their files (each writes its own each second)."""
        snapshots = shared.read_all(self._metrics_dir) if self._metrics_dir else []
        if not snapshots:  # none written yet: empty, with the configured thresholds
            snapshots = [FieldStats(thresholds(self.config)).snapshot()]
        return merge(snapshots)

    def exposition(self) -> bytes:
        """The workers' metrics summed from their files, read now (served through `self.scrapes`)."""
        registry = CollectorRegistry()
        registry.register(_AddSupervisorDrops(multiprocess.MultiProcessCollector(None, path=self._metrics_dir)))
        return generate_latest(registry)

    async def run(self, stop: asyncio.Event) -> int:
        config = self.config
        reserved = reserve_port(config.listen.address)
        port = reserved.getsockname()[1]
        self._worker_config = replace(config, listen=replace(config.listen, address=HostPort(config.listen.address.host, port)))
        self._metrics_dir = tempfile.mkdtemp(prefix="shadowdiff-metrics-")
        try:
            await self._start_admin()
            await asyncio.gather(*(worker.start(lambda: self._worker_config, self._metrics_dir) for worker in self.workers))
            self._started = True
            self._watchers = [asyncio.create_task(self._watch(w)) for w in self.workers]
            log.event(
                "info", "supervisor_started", listen=f"{config.listen.address.host}:{port}",
                admin=str(config.admin.listen), workers=[w.pid for w in self.workers],
            )  # fmt: skip
            await stop.wait()
            log.event("info", "stopping", reason="signal", workers=len(self.workers))
            return await self._stop()
        except BaseException:
            await self._stop()
            raise
        finally:
            reserved.close()
            if self._admin is not None:
                await self._admin.cleanup()
            if isinstance(self.source, StoreSource):
                self.source.reader.database.close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    async def _start_admin(self) -> None:
        listen = self.config.admin.listen
        self._admin = web.AppRunner(
            create_admin_app(
                self.scrapes.get, ready=self.ready, detail=self.detail, source=self.source,
                controls=self.controls, access=self.access,
            ),  # fmt: skip
            handle_signals=False,
            access_log=None,
        )
        await self._admin.setup()
        await web.TCPSite(self._admin, listen.host, listen.port).start()

    async def _watch(self, worker: Worker) -> None:
        """Replace a worker that dies while serving: after 1 s, doubling up to 30 s while
        replacements keep dying within a minute."""
        loop = asyncio.get_running_loop()
        delay, started = RESTART_DELAY, loop.time()
        while not self.stopping:
            code = await worker.wait()
            if self.stopping:
                return
            worker.ready = False
            if loop.time() - started > STABLE_SECONDS:
                delay = RESTART_DELAY
            assert worker.pid is not None
            multiprocess.mark_process_dead(worker.pid, self._metrics_dir)  # its live gauges go
            log.event("error", "worker_exited", worker=worker.number, pid=worker.pid, code=code, restart_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
            started = loop.time()
            try:
                await worker.start(lambda: self._worker_config, self._metrics_dir)
            except Exception as exc:  # it is tried again: a watcher must not die
                log.event("error", "worker_restart_failed", worker=worker.number, error=str(exc))
                continue
            log.event("info", "worker_restarted", worker=worker.number, pid=worker.pid)

    async def update(self, config: Config) -> None:
        """Send `config` to every worker, which applies it at once; restarted workers
        start with it. Raises RestartRequired (sending nothing) if it changes keys a
        running proxy cannot take (`listen.workers` among them)."""
        keys = restart_changes(self.config, config)
        if keys:
            raise RestartRequired(keys)
        self.config = config
        self.scrapes.min_interval = config.admin.metrics_min_interval
        self._worker_config = replace(config, listen=self._worker_config.listen)
        await asyncio.gather(*(worker.send(("config", self._worker_config)) for worker in self.workers))

    async def _stop(self) -> int:
        self.stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        config = self.config
        grace = config.listen.shutdown_timeout + config.mirror.drain_timeout + STOP_MARGIN
        codes = await asyncio.gather(*(worker.stop(grace) for worker in self.workers))
        return 0 if all(code in (0, None) for code in codes) else 1


async def supervise(config: Config, load: Callable[[], Config] | None = None) -> int:
    """Run `config.listen.workers` workers until SIGTERM/SIGINT; the exit code. `load` reads the
    config file again (POST /api/v1/reload, SIGHUP)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    supervisor = Supervisor(config, load=load)
    loop.add_signal_handler(signal.SIGHUP, on_sighup, supervisor.controls)
    try:
        return await supervisor.run(stop)
    except WorkerFailed as exc:
        if stop.is_set():  # told to stop while starting: not a failure
            return 0
        print(f"shadowdiff: {exc}", file=sys.stderr)
        return 1
