"""Who may do what on the admin listener: named tokens with a role, read at start.

The rules (README "Admin access"): `/metrics`, `/healthz` and `/readyz` are always open.
Reads (GET, HEAD: the API and the UI) are open while no viewer token is configured, and
need a viewer's or an operator's token once one is. Every change (any other method) needs
an operator's token, and is refused (403) when none is configured. A token is sent as
`Authorization: Bearer TOKEN`; it is compared with every configured one in constant time
(`hmac.compare_digest`, all of them, whatever matched), and only its name is ever shown.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from shadowdiff.config import AdminConfig, ConfigError

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
READS = frozenset({"GET", "HEAD"})
ANONYMOUS = "anonymous"


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
        self._tokens = tokens  # (name, role, secret)
        self.viewers = any(role == "viewer" for _, role, _ in tokens)
        self.operators = any(role == "operator" for _, role, _ in tokens)

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
            tokens.append((token.name, token.role, secret))
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
        given = presented.strip().encode("utf-8", "surrogateescape")
        found = None
        for name, role, secret in self._tokens:  # every one compared: the time says nothing of which
            if hmac.compare_digest(given, secret) and found is None:
                found = Caller(name, role)
        return found

    def check(self, method: str, path: str, authorization: str | None) -> Caller:
        """The caller, if it may do this; Denied (401 or 403, with what to do) if not."""
        if path in OPEN_PATHS:
            return Caller(None, ANONYMOUS)
        caller = self.caller(authorization)
        if caller is None:
            raise Denied(401, "that token is not one of admin.tokens")
        if method in READS:
            if self.viewers and caller.role == ANONYMOUS:
                raise Denied(401, "reading needs a token: send Authorization: Bearer TOKEN (a viewer's or an operator's)")
            return caller
        if not self.operators:
            raise Denied(403, "no operator token is configured (admin.tokens with role: operator): nothing may be changed")
        if caller.role == ANONYMOUS:
            raise Denied(401, "changes need an operator's token: send Authorization: Bearer TOKEN")
        if caller.role != "operator":
            raise Denied(403, f"the token {caller.name!r} is a viewer's: changes need an operator's", caller)
        return caller
