"""One worker of `serve --workers N`: `python -m shadowdiff.workers.worker`.

Started by the supervisor (`workers.supervisor`), never by hand: its stdin carries
frames (`shadowdiff.frames`), first ("start", Config, ready fd), then any
("config", Config) to apply while serving. It says it is ready by writing one byte
to the ready fd once listening, and stops on SIGTERM or when its stdin closes (the
supervisor is gone, whatever killed it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from shadowdiff import frames, log
from shadowdiff.config import Config
from shadowdiff.runtime import RestartRequired
from shadowdiff.loop import run_event_loop
from shadowdiff.service import ShadowDiff, serve

_MAX_FRAME_BYTES = 64 * 1024 * 1024


class _Channel:
    """The supervisor's frames after the first, read as they come; EOF stops the worker."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._decoder = frames.Decoder(_MAX_FRAME_BYTES)
        self.service: ShadowDiff | None = None
        self.pending: Config | None = None

    def readable(self) -> None:
        try:
            data = os.read(sys.stdin.fileno(), 65536)
        except OSError:
            data = b""
        if not data:
            self._stop.set()
            return
        try:
            messages = self._decoder.feed(data)
        except frames.FrameError as exc:
            log.event("error", "worker_channel_broken", error=str(exc))
            self._stop.set()
            return
        for message in messages:
            self._handle(message)

    def _handle(self, message: Any) -> None:
        kind = message[0]
        if kind != "config":
            log.event("warning", "worker_message_ignored", kind=str(kind))
        elif self.service is None:
            self.pending = message[1]  # still starting: applied once it is ready
        else:
            self.apply(message[1])

    def ready(self, service: ShadowDiff) -> None:
        self.service = service
        if self.pending is not None:
            self.apply(self.pending)
            self.pending = None

    def apply(self, config: Config) -> None:
        assert self.service is not None
        try:
            self.service.apply(config)
        except RestartRequired as exc:  # the supervisor checks first: not expected
            log.event("error", "config_refused", error=str(exc))


async def _work(config: Config, ready_fd: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGINT is ignored (worker_main): Ctrl-C reaches the supervisor, which sends SIGTERM.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    channel = _Channel(stop)
    loop.add_reader(sys.stdin.fileno(), channel.readable)

    def ready(service: ShadowDiff) -> None:
        channel.ready(service)
        try:
            os.write(ready_fd, b"1")
        except BrokenPipeError:  # the supervisor stopped waiting: it is shutting down
            stop.set()
        os.close(ready_fd)

    try:
        return await serve(config, stop, reuse_port=True, admin=False, on_ready=ready, refresh_metrics=True)
    finally:
        loop.remove_reader(sys.stdin.fileno())


def worker_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # before anything else: see _work()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload is the supervisor's (`pkill -HUP shadowdiff` too)
    try:
        kind, config, ready_fd = frames.read_blocking(sys.stdin.fileno(), _MAX_FRAME_BYTES)
        if kind != "start":
            raise ValueError(kind)
    except Exception:  # EOF, a frame too large, or bytes that are not our pickle
        print("shadowdiff worker: stdin does not start with a config (run by `serve --workers`)", file=sys.stderr)
        return 1
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
