"""The admin API's changes: the kill switch and live settings, and config reload.

    GET  /api/v1/controls   {"mirroring": "on"|"paused", "sample_rate", "reask_rate", "overridden", "config", "note"}
    POST /api/v1/controls   {"mirroring": "paused"} | {"mirroring": "on"} | {"sample_rate": 0.1} | {"reask_rate": 0.05}
    POST /api/v1/reload     read the config file again, validate it whole, apply it
    GET  /api/v1/whoami     {"name", "role", "can_change"}: what the sent token may do

Every change, made or refused (a bad body, a bad file, a key that needs a restart, a token
that may not), writes one `audit` log line: the token's name (never the token), the source
address, what was asked, the settings before and after, and the result. Who may call what
is `access`'s (the admin app's middleware checks it before these handlers run).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from shadowdiff import log
from shadowdiff.access import Access, Caller
from shadowdiff.controls import ControlError, Controls, audit_line, reload_audited, settings

CONTROLS = "/api/v1/controls"
RELOAD = "/api/v1/reload"
WHOAMI = "/api/v1/whoami"
CALLER = web.RequestKey("caller", Caller)  # where the access middleware puts who is asking


def audit(request: web.Request, what: str, before: Any, after: Any, result: str) -> None:
    caller = request.get(CALLER)
    audit_line(caller.name if caller else None, request.remote, what, before, after, result)


def _failed(request: web.Request, what: str, current: Any, exc: Exception) -> web.Response:
    log.event("error", "controls_failed", what=what, exc_info=exc)
    audit(request, what, current, None, f"refused: internal error ({type(exc).__name__})")
    return _json({"error": f"the change failed ({type(exc).__name__}); see the proxy's log"}, 500)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def add_routes(app: web.Application, controls: Controls | None, access: Access) -> None:
    async def state(request: web.Request) -> web.Response:
        if controls is None:
            return _json({"error": "this process has no controls (a worker: ask the supervisor's admin listener)"}, 503)
        return _json(controls.state())

    async def change(request: web.Request) -> web.Response:
        what = "controls"
        if controls is None:
            return _json({"error": "this process has no controls"}, 503)
        try:
            asked = await request.json(loads=orjson.loads)
        except web.HTTPRequestEntityTooLarge:
            audit(request, what, None, None, "refused: the body is too large")
            return _json({"error": "the body is too large: a change is a small JSON object"}, 413)
        except (ValueError, UnicodeDecodeError):
            audit(request, what, None, None, "refused: the body is not JSON")
            return _json({"error": 'the body must be JSON, e.g. {"mirroring": "paused"}'}, 400)
        what = f"controls {orjson.dumps(asked).decode()[:200]}"
        current = settings(controls.current)
        try:
            before, after = await controls.change(asked)
        except ControlError as exc:
            audit(request, what, current, current, f"refused: {exc}")
            return _json({"error": str(exc)}, 400)
        except Exception as exc:  # a bug: said, audited, and the proxy goes on
            return _failed(request, what, current, exc)
        audit(request, what, before, after, "accepted")
        log.event("warning" if after["mirroring"] == "paused" else "info", "controls_changed", before=before, after=after)
        return _json({"before": before, "after": after, **controls.state()})

    async def reload(request: web.Request) -> web.Response:
        if controls is None:
            return _json({"error": "this process has no controls"}, 503)
        caller = request.get(CALLER)
        try:
            result = await reload_audited(controls, caller.name if caller else None, request.remote)
        except Exception as exc:  # a bug: said, audited, and the proxy goes on
            return _failed(request, "reload", settings(controls.current), exc)
        if result.changed is not None:
            return _json({"reloaded": True, "changed": result.changed})
        if result.problems:
            return _json({"error": "the config file is not valid: nothing changed", "problems": list(result.problems)}, 400)
        if result.keys:
            return _json(
                {"error": f"nothing changed: the file {result.refusal} (restart the proxy for those)", "keys": list(result.keys)}, 409
            )
        return _json({"error": result.refusal}, 409)

    async def whoami(request: web.Request) -> web.Response:
        caller = request[CALLER]
        can_change = access.may_change(caller)
        return _json({"name": caller.name, "role": caller.role, "can_change": can_change})

    app.router.add_get(CONTROLS, state)
    app.router.add_post(CONTROLS, change)
    app.router.add_post(RELOAD, reload)
    app.router.add_get(WHOAMI, whoami)
