"""The comparison worker process: `python -m shadowdiff.experiment.worker_main`.

It reads jobs (two body views, a rule set, limits, the redactor's settings) as frames
on stdin, runs the same pure `compare_bodies()` the event loop runs inline, redacts
and cuts the differences it found, and writes one frame back per job: ("ok",
BodyResult, seconds spent) or ("error", text). It says ("ready",) once
loaded, so its start-up never counts against a job's deadline. It imports the model,
the comparison engine, the redactor and the framing only: no aiohttp, no yaml, no config
(`tests/test_architecture.py` checks).

stdout carries frames only: anything else that would print goes to stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from shadowdiff import frames
from shadowdiff.compare.body import compare_bodies


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a pipe may take a large frame in pieces
        view = view[os.write(fd, view) :]


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the proxy stops us (closing stdin), not Ctrl-C
    results = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not break a frame
    jobs = sys.stdin.fileno()
    _write(results, frames.encode(("ready",)))
    while True:
        try:
            control, candidate, rules, limits, redactor = frames.read_blocking(jobs)
        except EOFError:  # the proxy closed our stdin: it is done with us
            return 0
        started = time.perf_counter()
        try:
            result = compare_bodies(control, candidate, rules, limits)
            result.differences = tuple(redactor.difference(d) for d in result.differences)
            reply: tuple = ("ok", result, time.perf_counter() - started)
        except Exception as exc:  # an input the engine cannot take: the proxy counts it
            reply = ("error", f"{type(exc).__name__}: {exc}"[:300])
        try:
            frame = frames.encode(reply)
        except Exception as exc:  # a result pickle cannot take (nested too deep)
            frame = frames.encode(("error", f"{type(exc).__name__}: {exc}"[:300]))
        _write(results, frame)


if __name__ == "__main__":
    sys.exit(main())
