"""`shadowdiff ctl`: an operator's client for a running proxy's controls (control_api).

    shadowdiff ctl [--admin HOST:PORT | --config FILE] [--token-file FILE] [--json] ACTION
    ACTION: status | pause | resume | sample-rate R | reload

The admin address is --admin, else `admin.listen` from --config, else the default
(127.0.0.1:9901). The token is --token-file's content, else $SHADOWDIFF_TOKEN; it is sent
as `Authorization: Bearer` and never printed. Exit codes: 0 the change was made (or, for
status, the state was read), 1 it was refused or failed (401, 403, a bad file, the admin
listener unreachable), 2 bad usage (a rate outside 0..1, an unreadable token file).

One plain HTTP request per step (http.client, 5 s timeout): no environment proxies, so the
token goes to the admin listener and nowhere else, and no redirects.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowdiff import config as configuration
from shadowdiff.config import ConfigError, HostPort

OK, FAILED, USAGE = 0, 1, 2
TIMEOUT = 5.0
TOKEN_ENV = "SHADOWDIFF_TOKEN"
CONTROLS, RELOAD, WHOAMI = "/api/v1/controls", "/api/v1/reload", "/api/v1/whoami"
# A reloaded key whose value a live setting hides until restart (the API's names for them).
LIVE_KEYS = {"mirror.enabled": "mirroring", "mirror.sample_rate": "sample_rate", "noise.reask_rate": "reask_rate"}


class CtlError(Exception):
    """What went wrong, said for an operator; `code` is the exit code it means."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # the JSON the admin listener sent
    raw: bytes


@dataclass(frozen=True, slots=True)
class Admin:
    """Where the admin listener is, and the token to show it (kept out of every repr)."""

    address: HostPort
    token: str | None = field(default=None, repr=False)
    token_source: str = ""  # where the token came from, to say so when it is refused

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        """One request; the answer whatever its status. CtlError if it cannot be had."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(self.address.host, self.address.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CtlError(
                f"cannot reach the admin listener at {self.address}: {_reason(exc)}; "
                "is `shadowdiff serve` running, and is admin.listen right?"
            ) from None
        finally:
            connection.close()
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CtlError(
                f"the admin listener at {self.address} answered {status} with something that is not JSON; "
                "is that shadowdiff's admin address (admin.listen)?"
            ) from None
        return Answer(status, parsed, raw)

    def expect(self, method: str, path: str, body: Any = None) -> Answer:
        """`call`, with a refusal (401, 403) or a server failure (5xx, 404) turned into a CtlError."""
        answer = self.call(method, path, body)
        error = _error_of(answer)
        if answer.status == 401:
            hint = (
                f"check the token (from {self.token_source}) against the proxy's admin.tokens"
                if self.token
                else f"give a token with --token-file FILE or {TOKEN_ENV}"
            )
            raise CtlError(f"the admin listener at {self.address} refused: {error}; {hint}")
        if answer.status == 403:
            raise CtlError(f"the admin listener at {self.address} refused: {error} (an operator's token is needed)")
        if answer.status == 404 or answer.status >= 500:
            raise CtlError(f"the admin listener at {self.address} answered {answer.status}: {error}")
        return answer


def _error_of(answer: Answer) -> str:
    body = answer.body
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)[:200]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {TIMEOUT:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        return f"it does not speak HTTP ({type(exc).__name__})"
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


# -- the command line -------------------------------------------------------------


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1 (0.1 mirrors one request in ten), got {text[:40]!r}")
    return value


def _host_port(text: str) -> HostPort:
    try:
        return HostPort.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # Given before the action or after it; after it, an option not given must not hide one given before.
    default: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--admin", type=_host_port, metavar="HOST:PORT",
        help="the proxy's admin listener (default: admin.listen from --config, else 127.0.0.1:9901)", **default,
    )  # fmt: skip
    parser.add_argument("--config", metavar="FILE", help="the proxy's YAML config: admin.listen is read from it", **default)
    parser.add_argument(
        "--token-file", metavar="FILE",
        help=f"a file holding an admin token (default: ${TOKEN_ENV}); a viewer's reads, an operator's also changes",
        **default,
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the admin API's JSON answer as it is", **default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options and actions of `shadowdiff ctl` (cli.py registers the command)."""
    _options(parser, defaults=True)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary in (
        ("status", "show mirroring, the sample rate and the re-ask rate, live and as in the file"),
        ("pause", "pause mirroring at once (the kill switch): copies in flight finish, new ones are skipped"),
        ("resume", "mirror again (undoes pause)"),
        ("sample-rate", "set the share of eligible requests mirrored, from 0 to 1"),
        ("reload", "read the config file again and apply it (a bad file or a restart key changes nothing)"),
    ):
        action = actions.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ". Live settings are lost on restart."
        )
        if name == "sample-rate":
            action.add_argument("rate", type=_fraction, metavar="RATE", help="e.g. 0.1 for one request in ten")
        _options(action, defaults=False)


def run(args: argparse.Namespace) -> int:
    """Carry out `shadowdiff ctl` as parsed by add_arguments' parser; the exit code."""
    try:
        admin = Admin(_address(args), *_token(args))
        return _ACTIONS[args.action](admin, args)
    except CtlError as exc:
        print(f"shadowdiff ctl: {exc}", file=sys.stderr)
        return exc.code


def _address(args: argparse.Namespace) -> HostPort:
    if args.admin is not None and args.config is not None:
        raise CtlError("give --admin or --config, not both", USAGE)
    if args.admin is not None:
        address = args.admin
    elif args.config is not None:
        address = _listen_in(args.config)
        if address.port == 0:
            raise CtlError(f"admin.listen in {args.config} is port 0 (chosen at start): give --admin HOST:PORT", USAGE)
    else:
        address = configuration.AdminConfig().listen
    # Listening on every address means it answers on loopback too.
    return HostPort({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address.host, address.host), address.port)


def _listen_in(path: str) -> HostPort:
    """admin.listen from a config file, even one bad elsewhere (`reload` is how an operator hears
    what is wrong with it): the admin section validated alone. ConfigError (cli.py: exit 2, key
    paths named) if the file is no file of settings, or its admin section is bad."""
    raw = configuration.read(path)
    try:
        return configuration.from_mapping(raw, proxy=False).admin.listen
    except ConfigError:
        admin = raw.get("admin")
        return configuration.from_mapping({"admin": admin} if isinstance(admin, dict) else {}, proxy=False).admin.listen


def _token(args: argparse.Namespace) -> tuple[str | None, str]:
    """(token, where it came from); CtlError (bad usage) for a file that cannot be used."""
    if args.token_file is not None:
        source = f"--token-file {args.token_file}"
        try:
            with open(args.token_file, "rb") as file:
                secret = file.read(4096).strip()
        except OSError as exc:
            raise CtlError(f"cannot read the token file {args.token_file}: {exc.strerror or exc}", USAGE) from None
        if not secret:
            raise CtlError(f"the token file {args.token_file} is empty", USAGE)
    else:
        source = f"${TOKEN_ENV}"
        secret = os.environ.get(TOKEN_ENV, "").strip().encode("utf-8", "surrogateescape")
        if not secret:
            return None, ""
    # A header carries visible ASCII; anything else would end up in an error message, token and all.
    if not all(0x21 <= byte <= 0x7E for byte in secret):
        raise CtlError(f"the token in {source} has spaces or characters other than visible ASCII", USAGE)
    return secret.decode("ascii"), source


# -- the actions --------------------------------------------------------------------


def _print_json(answer: Answer) -> None:
    print(answer.raw.decode("utf-8", "replace"))


def _where(name: str, state: dict[str, Any]) -> str:
    if name not in state.get("overridden", []):
        return "(from the file)"
    in_file = state.get("config", {}).get(name)
    return "(live setting, as in the file)" if in_file == state.get(name) else f"(live setting; the file says {in_file})"


def _status(admin: Admin, args: argparse.Namespace) -> int:
    answer = admin.expect("GET", CONTROLS)
    if args.json:
        _print_json(answer)
        return OK
    state = answer.body
    for label, name in (("mirroring", "mirroring"), ("sample rate", "sample_rate"), ("re-ask rate", "reask_rate")):
        print(f"{label + ':':<13} {state.get(name)!s:<7} {_where(name, state)}")
    caller = admin.call("GET", WHOAMI)
    if caller.status == 200 and isinstance(caller.body, dict):
        who = caller.body
        if who.get("can_change"):
            print(f"you:          {who.get('name')} ({who.get('role')}): may change these")
        else:
            named = f"{who.get('name')} ({who.get('role')})" if who.get("name") else "no token"
            print(f"you:          {named}: may read, not change (changes need an operator's token)")
    print(state.get("note", ""))
    return OK


def _change(admin: Admin, args: argparse.Namespace, asked: dict[str, Any]) -> Answer:
    answer = admin.expect("POST", CONTROLS, asked)
    if args.json:
        _print_json(answer)
    if answer.status != 200:
        raise CtlError(f"the change was refused: {_error_of(answer)}")
    return answer


def _pause(admin: Admin, args: argparse.Namespace) -> int:
    answer = _change(admin, args, {"mirroring": "paused"})
    if not args.json:
        before = answer.body["before"]["mirroring"]
        print(f"mirroring paused (was {before}): copies in flight finish, new requests are not mirrored")
        print(answer.body.get("note", ""))
    return OK


def _resume(admin: Admin, args: argparse.Namespace) -> int:
    answer = _change(admin, args, {"mirroring": "on"})
    body = answer.body
    if body["after"]["mirroring"] != "on":  # the live switch cannot turn on what the file turns off
        raise CtlError("mirroring stays off: the config file says mirror.enabled: false; edit it and reload")
    if not args.json:
        print(f"mirroring on (was {body['before']['mirroring']})")
        print(body.get("note", ""))
    return OK


def _sample_rate(admin: Admin, args: argparse.Namespace) -> int:
    answer = _change(admin, args, {"sample_rate": args.rate})
    body = answer.body
    if not args.json:
        print(f"sample rate {body['after']['sample_rate']} (was {body['before']['sample_rate']})")
        if body["after"]["mirroring"] != "on":
            print("mirroring is paused: nothing is mirrored until `shadowdiff ctl resume`")
        print(body.get("note", ""))
    return OK


def _reload(admin: Admin, args: argparse.Namespace) -> int:
    answer = admin.expect("POST", RELOAD)
    if args.json:
        _print_json(answer)
    body = answer.body if isinstance(answer.body, dict) else {}
    if answer.status != 200:
        # 400: a bad file (its problems by key path); 409: keys that need a restart, or no file
        lines = [f"reload refused: {_error_of(answer)}", *(f"  {line}" for line in body.get("problems", []))]
        if body.get("keys"):
            lines.append("  needs a restart: " + ", ".join(body["keys"]))
        raise CtlError("\n".join(lines))
    if args.json:
        return OK
    changed = body.get("changed", [])
    print("reloaded: " + (", ".join(changed) if changed else "the file is as it was, nothing changed"))
    hidden = [LIVE_KEYS[key] for key in changed if key in LIVE_KEYS]
    if hidden:
        state = admin.expect("GET", CONTROLS).body
        for name in hidden:
            if name in state.get("overridden", []):
                print(f"note: {name} stays at its live setting {state.get(name)} (the file says {state['config'].get(name)})")
    return OK


_ACTIONS: dict[str, Callable[[Admin, argparse.Namespace], int]] = {
    "status": _status,
    "pause": _pause,
    "resume": _resume,
    "sample-rate": _sample_rate,
    "reload": _reload,
}
