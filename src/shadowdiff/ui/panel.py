"""What the UI shows of the live controls and of who is asking: the state badge in every page's
header (mirroring on or PAUSED, the sample rate; who is signed in) and the controls panel on the
routes page (each setting, live or from the file, and the buttons an operator may press).

Who may press them is the access rules' (`access`): an operator's token, and none at all when
no operator token is configured. Anyone else sees the same controls disabled, with the reason.
Plain values in, frozen values out: nothing here touches a request, the network or a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shadowdiff.access import ANONYMOUS, CSRF_HEADER, Access, Caller
from shadowdiff.control_api import CONTROLS

SIGN_IN = "/ui/sign-in"
SIGN_OUT = "/ui/sign-out"
LABELS = {"mirroring": "Mirroring", "sample_rate": "Sample rate", "reask_rate": "Re-ask rate"}
# Why the controls are disabled, keyed as the template words it.
NO_OPERATOR, VIEWER, SIGNED_OUT = "no-operator", "viewer", "signed-out"


def sign_in_href(here: str) -> str:
    """The sign-in form, coming back to `here` (a path with its query, as sent: its escapes are kept,
    not escaped again) once signed in."""
    return f"{SIGN_IN}?next={quote(here, safe='/%')}"


@dataclass(frozen=True, slots=True)
class Header:
    """The header's right-hand side: the live state (None when there are no controls or the caller may
    not read them) and who is asking."""

    paused: bool | None
    sample_rate: float | None
    name: str | None  # the token's name, once signed in
    role: str
    signed_in: bool  # by the form: the header offers to sign out
    sign_in: str | None  # the sign-in link, while tokens exist and no one is signed in


def header(state: dict[str, Any] | None, access: Access, caller: Caller, *, signed_in: bool, here: str) -> Header:
    """The header for `caller` on the page at `here`; `state` is Controls.state() (None without controls)."""
    shown = state if state is not None and access.may_read(caller) else None
    tokens = access.tokens
    return Header(
        paused=None if shown is None else shown["mirroring"] != "on",
        sample_rate=None if shown is None else shown["sample_rate"],
        name=caller.name,
        role=caller.role,
        signed_in=signed_in and caller.name is not None,
        sign_in=sign_in_href(here) if tokens and caller.role == ANONYMOUS else None,
    )


@dataclass(frozen=True, slots=True)
class Setting:
    name: str  # the API's name
    label: str
    value: Any  # what the proxy runs with now
    configured: Any  # what the config file says
    live: bool  # set by an operator: lost on restart


@dataclass(frozen=True, slots=True)
class Panel:
    paused: bool
    settings: tuple[Setting, ...]
    sample_rate: float
    reask_rate: float
    note: str
    file_off: bool  # mirror.enabled is false in the file: resuming cannot turn mirroring on
    can_change: bool
    why: str | None  # NO_OPERATOR, VIEWER or SIGNED_OUT while the controls are disabled
    name: str | None  # the caller's token name, for the reason
    sign_in: str  # the sign-in link, for the reason
    endpoint: str = CONTROLS  # where the buttons send their change
    csrf_header: str = CSRF_HEADER  # which they send with it (a session's change needs it)


def panel(state: dict[str, Any], access: Access, caller: Caller, *, here: str) -> Panel:
    """The controls panel of Controls.state() `state`, for `caller` on the page at `here`."""
    overridden = set(state["overridden"])
    settings = tuple(
        Setting(name, label, state[name], state["config"][name], name in overridden) for name, label in LABELS.items()
    )
    can_change = access.may_change(caller)
    if can_change:
        why = None
    elif not access.operators:
        why = NO_OPERATOR
    else:
        why = VIEWER if caller.role == "viewer" else SIGNED_OUT
    return Panel(
        paused=state["mirroring"] != "on", settings=settings, sample_rate=state["sample_rate"],
        reask_rate=state["reask_rate"], note=state["note"], file_off=state["config"]["mirroring"] != "on",
        can_change=can_change, why=why, name=caller.name, sign_in=sign_in_href(here),
    )  # fmt: skip
