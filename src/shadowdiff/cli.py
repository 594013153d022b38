"""The `shadowdiff` command: serve, demo, check-config.

`main(argv) -> int` is the testable entry point; `run()` is the console script.
Errors become exit codes in one place: 2 for a bad config or bad usage, 1 for a
failure at run time (a port already taken), 0 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from shadowdiff import __version__, config as configuration, ctl, log
from shadowdiff.config import Config, ConfigError
from shadowdiff.loop import run_event_loop
from shadowdiff.store.database import StoreError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowdiff",
        description="A shadow-testing proxy: clients get the primary's answers; a copy of each "
        "request goes to the shadow, and the two answers are compared.",
    )
    parser.add_argument("--version", action="version", version=f"shadowdiff {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy. Flags override the config file; with --primary and --shadow "
        "no file is needed.",
    )
    serve.add_argument("--config", metavar="FILE", help="YAML config (see config/shadowdiff.yaml)")
    _add_overrides(serve)

    demo = commands.add_parser(
        "demo",
        help="run a self-contained demo on loopback",
        description="Start a demo primary and a demo candidate on loopback, put the proxy in front, "
        "drive traffic, and print per-route results.",
    )
    demo.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until Ctrl-C)")
    demo.add_argument("--rate", type=float, default=50.0, metavar="RPS", help="requests per second to drive (default: 50)")

    ui = commands.add_parser(
        "ui",
        help="serve the web UI and API over a store, without a proxy",
        description="Serve the admin UI and API (read-only) over a store: a fleet's PostgreSQL, or the "
        "SQLite file a proxy or the demo left. The store and the admin address come from --config, "
        "else the defaults; --store and --admin override them.",
    )
    ui.add_argument("--config", metavar="FILE", help="a proxy's YAML config: its store, admin and noise sections are used")
    ui.add_argument("--store", metavar="URL", help="sqlite:///PATH or postgresql://... (store.url; default: the default store)")
    ui.add_argument("--admin", metavar="HOST:PORT", help="where to serve it (admin.listen; default 127.0.0.1:9901)")

    check = commands.add_parser(
        "check-config",
        help="validate a config file and print the effective config",
        description="Validate FILE and print the effective config, secrets masked. "
        "Exit 0 if valid, 2 with one line per bad key path if not.",
    )
    check.add_argument("file", metavar="FILE")
    _add_overrides(check)

    control = commands.add_parser(
        "ctl",
        help="change a running proxy: pause, resume, sample-rate, reload, or show its status",
        description="Talk to a running proxy's admin listener: pause or resume mirroring, set the sample "
        "rate, reload the config file, or show the live settings. Exit 0 when the change was made, 1 when it "
        "was refused or failed, 2 on bad usage. Live settings are lost on restart.",
    )
    ctl.add_arguments(control)
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", metavar="HOST:PORT", help="traffic listener (listen.address)")
    parser.add_argument("--primary", metavar="URL", help="primary base URL (primary.url)")
    parser.add_argument("--shadow", metavar="URL", help="shadow base URL (shadow.url)")
    parser.add_argument("--admin", metavar="HOST:PORT", help="admin listener (admin.listen)")
    parser.add_argument("--store", metavar="URL", help="the mismatch store: sqlite:///PATH or postgresql://... (store.url)")
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="proxy processes sharing the listen port (listen.workers; default 1); bounds apply per process",
    )  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "listen.address": args.listen,
        "primary.url": args.primary,
        "shadow.url": args.shadow,
        "admin.listen": args.admin,
        "listen.workers": args.workers,
        "store.url": args.store,
    }
    return {key: value for key, value in pairs.items() if value is not None}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    command: Callable[[argparse.Namespace], int] = _COMMANDS[args.command]
    try:
        return command(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:  # a store that cannot be created: say what to fix
        print(f"store error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. address already in use
        print(f"shadowdiff: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _serve_command(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    config = configuration.load(args.config, overrides)
    # A reload reads the same file with the same flags on top; without a file there is nothing to read.
    load = (lambda: configuration.load(args.config, overrides)) if args.config else None
    log.configure(config.logging.level, background=True)
    try:
        if config.listen.workers > 1:
            from shadowdiff.workers.supervisor import supervise

            return run_event_loop(supervise(config, load))
        return run_event_loop(_serve(config, load))
    finally:
        log.shutdown()


def _demo(args: argparse.Namespace) -> int:
    from shadowdiff.demo import run_demo

    return run_event_loop(run_demo(duration=args.duration, rate=args.rate))


def _ui(args: argparse.Namespace) -> int:
    from shadowdiff.viewer import run_viewer

    overrides = {key: value for key, value in (("store.url", args.store), ("admin.listen", args.admin)) if value is not None}
    config = configuration.load(args.config, overrides, proxy=False)
    log.configure(config.logging.level, background=True)
    try:
        return run_event_loop(run_viewer(config))
    finally:
        log.shutdown()


def _check_config(args: argparse.Namespace) -> int:
    config: Config = configuration.load(args.file, _overrides(args))
    sys.stdout.write(configuration.dump(config))
    return EXIT_OK


async def _serve(config: Config, load: Callable[[], Config] | None) -> int:
    from shadowdiff.service import serve  # here: `ctl` and `check-config` start without aiohttp

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await serve(config, stop, load=load)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve_command,
    "ui": _ui,
    "demo": _demo,
    "check-config": _check_config,
    "ctl": ctl.run,
}


def run() -> None:
    sys.exit(main())
