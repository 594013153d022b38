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
Gauges say how they combine (`multiprocess_mode` in metrics.py).

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
import pickle
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import replace

from aiohttp import web

from shadowdiff import log
from shadowdiff.admin import create_admin_app
from shadowdiff.config import Config, HostPort

READY_DEADLINE = 60.0  # seconds for a worker to start listening
RESTART_DELAY = 1.0  # seconds before a dead worker is replaced
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
        self._relay: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, config: Config, metrics_dir: str) -> None:
        """Start the process and wait until it listens (raises WorkerFailed if it dies first)."""
        ready_read, ready_write = os.pipe()
        try:
            env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shadowdiff.workers",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                pass_fds=(ready_write,),
                limit=_LOG_LINE_LIMIT,
            )  # fmt: skip
        finally:
            os.close(ready_write)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._relay = asyncio.create_task(_relay_lines(self.process.stdout), name=f"worker {self.number} log")
        self.process.stdin.write(pickle.dumps((config, ready_write)))
        self.process.stdin.close()
        try:
            said = await asyncio.wait_for(asyncio.to_thread(os.read, ready_read, 1), READY_DEADLINE)
        except asyncio.TimeoutError:
            said = b""
        finally:
            os.close(ready_read)
        if said != b"1":
            await self.stop(0.0)
            raise WorkerFailed(f"worker {self.number} exited before it was ready (exit code {self.process.returncode})")
        self.ready = True

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
    while True:
        try:
            line = await stream.readline()
        except (ValueError, asyncio.LimitOverrunError):  # a line past the limit: skip the rest of it
            continue
        if not line:
            return
        log.emit_line(line if line.endswith(b"\n") else line + b"\n")


def reserve_port(address: HostPort) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT: the address is checked and held, port 0 resolved.

    A bound socket that does not listen takes no connections; the workers' listening
    sockets, bound with the same option by the same user, share the port.
    """
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, address.port))
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workers = [Worker(n) for n in range(config.listen.workers)]
        self.stopping = False
        self._started = False
        self._metrics_dir = ""
        self._admin: web.AppRunner | None = None
        self._watchers: list[asyncio.Task[None]] = []

    def ready(self) -> bool:
        """Every worker started once, and at least one is serving (others may be restarting)."""
        return self._started and not self.stopping and any(worker.ready for worker in self.workers)

    def detail(self) -> str:
        return f"workers ready: {sum(worker.ready for worker in self.workers)}/{len(self.workers)}"

    def exposition(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._metrics_dir)
        return generate_latest(registry)

    async def run(self, stop: asyncio.Event) -> int:
        config = self.config
        reserved = reserve_port(config.listen.address)
        port = reserved.getsockname()[1]
        worker_config = replace(config, listen=replace(config.listen, address=HostPort(config.listen.address.host, port)))
        self._metrics_dir = tempfile.mkdtemp(prefix="shadowdiff-metrics-")
        try:
            await self._start_admin()
            await asyncio.gather(*(worker.start(worker_config, self._metrics_dir) for worker in self.workers))
            self._started = True
            self._watchers = [asyncio.create_task(self._watch(w, worker_config)) for w in self.workers]
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
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    async def _start_admin(self) -> None:
        listen = self.config.admin.listen
        self._admin = web.AppRunner(
            create_admin_app(self.exposition, ready=self.ready, detail=self.detail), handle_signals=False, access_log=None
        )
        await self._admin.setup()
        await web.TCPSite(self._admin, listen.host, listen.port).start()

    async def _watch(self, worker: Worker, config: Config) -> None:
        """Replace a worker that dies while serving."""
        from prometheus_client import multiprocess

        while not self.stopping:
            code = await worker.wait()
            if self.stopping:
                return
            worker.ready = False
            assert worker.pid is not None
            multiprocess.mark_process_dead(worker.pid, self._metrics_dir)  # its live gauges go
            log.event("error", "worker_exited", worker=worker.number, pid=worker.pid, code=code, restart_in=RESTART_DELAY)
            await asyncio.sleep(RESTART_DELAY)
            try:
                await worker.start(config, self._metrics_dir)
            except WorkerFailed as exc:
                log.event("error", "worker_restart_failed", worker=worker.number, error=str(exc))
                continue
            log.event("info", "worker_restarted", worker=worker.number, pid=worker.pid)

    async def _stop(self) -> int:
        self.stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        config = self.config
        grace = config.listen.shutdown_timeout + config.mirror.drain_timeout + STOP_MARGIN
        codes = await asyncio.gather(*(worker.stop(grace) for worker in self.workers))
        return 0 if all(code in (0, None) for code in codes) else 1


async def supervise(config: Config) -> int:
    """Run `config.listen.workers` workers until SIGTERM/SIGINT; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await Supervisor(config).run(stop)
    except WorkerFailed as exc:
        print(f"shadowdiff: {exc}", file=sys.stderr)
        return 1


# -- the worker side ----------------------------------------------------------------


async def _work(config: Config, ready_fd: int) -> int:
    from shadowdiff.service import ShadowDiff, tune_gc

    service = ShadowDiff(config, reuse_port=True, admin=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    tune_gc()
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    try:
        while not stop.is_set():  # values kept outside the collectors reach the files each second
            service.metrics.refresh()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await service.stop()
        service.metrics.refresh()
    return 0


def worker_main() -> int:
    """Entry point of a worker process: (Config, ready fd) arrive pickled on stdin."""
    from shadowdiff.cli import run_event_loop

    config, ready_fd = pickle.load(sys.stdin.buffer)
    log.configure(config.logging.level, background=True)
    try:
        return run_event_loop(_work(config, ready_fd))
    except OSError as exc:  # the port, most likely: the supervisor reports it
        print(f"shadowdiff worker: {exc}", file=sys.stderr)
        return 1
    finally:
        log.shutdown()


if __name__ == "__main__":
    sys.exit(worker_main())
