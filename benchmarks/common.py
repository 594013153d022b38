"""Helpers the benchmark scripts share: machine description, ports, child processes,
/proc readers, percentiles, and an event-loop runner that Ctrl-C and SIGTERM stop cleanly.

The scripts run as `python benchmarks/X.py`, so their directory is on sys.path and they
import this module as `common`.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import platform
import signal
import socket
import subprocess
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the machine and the code -------------------------------------------------------------------


def cpu_model(fallback: str = "unknown CPU") -> str:
    """The CPU's model name from /proc/cpuinfo, else platform.processor(), else `fallback`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or fallback


def code_version(fallback: str = "?") -> str:
    """shadowdiff's version (`fallback` if not importable) and the checkout's commit (read-only git commands)."""
    try:
        from shadowdiff import __version__ as version
    except ImportError:
        version = fallback
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    if not head:
        return version
    return f"{version} at {head}" + (" (src/ has uncommitted changes)" if dirty else "")


# -- ports and child processes ------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_setup(cpus: set[int] | None = None) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM when this process dies (PR_SET_PDEATHSIG), pinned to `cpus` if set."""

    def setup() -> None:
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after `timeout` s; the exit code (None for no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


# -- /proc readers ------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (raises OSError once the process is gone)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MB (OSError if gone, KeyError if it has no VmRSS, e.g. a zombie)."""
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parent_pids() -> dict[int, int]:
    """Every visible process's parent pid, from /proc/PID/stat."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def children_of(pid: int) -> list[int]:
    """The direct children of `pid`."""
    return [p for p, parent in parent_pids().items() if parent == pid]


def descendants(pid: int) -> list[int]:
    """The children of `pid`, theirs, and so on (not `pid` itself)."""
    parents = parent_pids()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


# -- statistics ---------------------------------------------------------------------------------


def percentile(values: list[float] | array, q: float) -> float:
    """Nearest-rank percentile, `q` between 0 and 1; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- running ------------------------------------------------------------------------------------


def run_loop(coro: Any) -> Any:
    """Run `coro` on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_supervised(main: Callable[[], Awaitable[None]], cleanup: Callable[[], None]) -> bool:
    """Run `main()` until done or Ctrl-C/SIGTERM, then `cleanup()` on every path; True if interrupted."""
    interrupted: list[int] = []

    async def supervised() -> None:
        # Ctrl-C and SIGTERM cancel the run (handled by the loop, not raised inside a callback);
        # `cleanup` runs below either way.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def interrupt(signum: int) -> None:
            interrupted.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupt, signum)
        try:
            await main()
        except asyncio.CancelledError:
            if not interrupted:
                raise
            print(f"\n# interrupted by {signal.Signals(interrupted[0]).name}: stopping", flush=True)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        run_loop(supervised())
    except KeyboardInterrupt:  # a signal before the handlers were installed
        interrupted.append(signal.SIGINT)
    finally:
        cleanup()
    return bool(interrupted)


async def wait_for_signal(lifetime: float) -> None:
    """Return on SIGTERM or SIGINT, or after `lifetime` s at most (a backend never outlives its bound)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=lifetime)
    except asyncio.TimeoutError:
        pass
