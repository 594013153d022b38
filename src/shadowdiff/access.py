"""Who may do what on the admin listener: named tokens with a role, read at start.

The rules (README "Admin access"): `/metrics`, `/healthz` and `/readyz` are always open.
Reads (GET, HEAD: the API and the UI) are open while no viewer token is configured, and
need a viewer's or an operator's token once one is. Every change (any other method) needs
an operator's token, and is refused (403) when none is configured. A token is sent as
`Authorization: Bearer TOKEN`; it is compared with every configured one in constant time
(`hmac.compare_digest` of SHA-256 digests, so lengths say nothing either; all of them,
whatever matched), and only its name is ever shown.

A browser signs in once (`sign_in(token)`, the UI's form) and gets a session: a random id in
an HttpOnly, SameSite=Strict cookie, kept in memory (at most MAX_SESSIONS, each for
SESSION_SECONDS; a restart signs everyone out), never the token itself. A change sent with
the session cookie must also carry the `X-Shadowdiff-Request` header, which another site's
page cannot set without asking first (CORS), so a session cannot be ridden from elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from shadowdiff.config import AdminConfig, ConfigError

# The probes, /metrics, and the UI's own stylesheet and script (the package's files: no data in them).
OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/ui/app.css", "/ui/app.js"})
SIGN_IN_PATHS = frozenset({"/ui/sign-in", "/ui/sign-out"})  # the UI's form: it checks the token itself
READS = frozenset({"GET", "HEAD"})
ANONYMOUS = "anonymous"
SESSION_COOKIE = "shadowdiff_session"
CSRF_HEADER = "X-Shadowdiff-Request"
MAX_SESSIONS = 1000
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Caller:
    name: str | None  # the token's name; None without one
    role: str  # viewer, operator or anonymous


class Denied(Exception):
    def __init__(self, status: int, message: str, caller: Caller | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.caller = caller  # who was refused, when the token was one of ours


class Access:
    def __init__(self, tokens: list[tuple[str, str, bytes]]) -> None:
        self._tokens = tokens  # (name, role, the SHA-256 of the secret)
        self.viewers = any(role == "viewer" for _, role, _ in tokens)
        self.operators = any(role == "operator" for _, role, _ in tokens)
        self._sessions: OrderedDict[str, tuple[Caller, float]] = OrderedDict()  # id -> (caller, expiry)

    @classmethod
    def of(cls, admin: AdminConfig) -> Access:
        """Read every token's secret; ConfigError naming the key of one that cannot be read."""
        tokens, problems = [], []
        for i, token in enumerate(admin.tokens):
            where = f"admin.tokens[{i}]"
            if token.token_file:
                try:
                    with open(token.token_file, "rb") as file:
                        secret = file.read(4096).strip()
                except OSError as exc:
                    problems.append(f"{where}.token_file: cannot read {token.token_file}: {exc.strerror or exc}")
                    continue
            else:
                secret = os.environ.get(token.token_env, "").strip().encode()
                if not secret:
                    problems.append(f"{where}.token_env: the environment variable {token.token_env} is not set")
                    continue
            if len(secret) < 16:
                problems.append(f"{where}: the token is shorter than 16 characters (use e.g. `openssl rand -hex 32`)")
                continue
            tokens.append((token.name, token.role, hashlib.sha256(secret).digest()))
        if problems:
            raise ConfigError(problems)
        return cls(tokens)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller a `Authorization` header names: anonymous without one, None for a wrong token."""
        if not authorization:
            return Caller(None, ANONYMOUS)
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        given = hashlib.sha256(presented.strip().encode("utf-8", "surrogateescape")).digest()
        found = None
        for name, role, secret in self._tokens:  # every one compared, digests of one length: the time says nothing
            if hmac.compare_digest(given, secret) and found is None:
                found = Caller(name, role)
        return found

    @property
    def tokens(self) -> bool:
        """Whether any token is configured (the UI then offers to sign in)."""
        return bool(self._tokens)

    def may_read(self, caller: Caller) -> bool:
        """Anyone may read until a viewer token is configured; then a token's holder."""
        return not (self.viewers and caller.role == ANONYMOUS)

    def may_change(self, caller: Caller) -> bool:
        """Only an operator's token changes anything (and none does while none is configured)."""
        return self.operators and caller.role == "operator"

    def sign_in(self, token: str) -> str | None:
        """A new session's id for one of our tokens (None for any other)."""
        caller = self.caller(f"Bearer {token}") if token else None
        if caller is None or caller.role == ANONYMOUS:
            return None
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session = secrets.token_urlsafe(32)
        self._sessions[session] = (caller, time.monotonic() + SESSION_SECONDS)
        return session

    def sign_out(self, session: str | None) -> None:
        self._sessions.pop(session or "", None)

    def session(self, session: str | None) -> Caller | None:
        """Who a live session is (None: no such session, or it expired)."""
        return self._session(session) if session else None

    def _session(self, session: str) -> Caller | None:
        found = self._sessions.get(session)
        if found is None or found[1] < time.monotonic():
            self._sessions.pop(session, None)
            return None
        return found[0]

    def check(
        self, method: str, path: str, authorization: str | None, *, session: str | None = None, csrf: bool = False
    ) -> Caller:
        """The caller, if it may do this; Denied (401 or 403, with what to do) if not. `session`: the
        UI's cookie, used when no Authorization is sent; `csrf`: its change carries CSRF_HEADER."""
        if path in OPEN_PATHS or path in SIGN_IN_PATHS:
            return Caller(None, ANONYMOUS)
        if not authorization and session:
            caller = self._session(session) or Caller(None, ANONYMOUS)  # an expired session reads as no one
            if method not in READS and caller.role != ANONYMOUS and not csrf:
                raise Denied(403, f"a change from the UI needs its {CSRF_HEADER} header", caller)
        else:
            caller = self.caller(authorization)
        if caller is None:
            raise Denied(401, "that token is not one of admin.tokens")
        if method in READS:
            if not self.may_read(caller):
                raise Denied(401, "reading needs a token: send Authorization: Bearer TOKEN (a viewer's or an operator's)")
            return caller
        if not self.operators:
            raise Denied(403, "no operator token is configured (admin.tokens with role: operator): nothing may be changed")
        if caller.role == ANONYMOUS:
            raise Denied(401, "changes need an operator's token: send Authorization: Bearer TOKEN")
        if caller.role != "operator":
            raise Denied(403, f"the token {caller.name!r} is a viewer's: changes need an operator's", caller)
        return caller
