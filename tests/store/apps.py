"""The store tests' backends: a primary and a candidate that differ where the tests say.

- `/users/{id}`: the candidate changes `plan` for even ids (a mismatch on every other one);
- `/same/{id}`: the same answer from both (a match);
- `/echo`: the answer repeats what the client sent (query, Authorization, Cookie, body) and
  sets a session cookie, and differs in `who`: a mismatch whose sample would carry the client's
  and the backend's secrets if redaction missed them;
- `/keyed`: `{"sessions": {KEY_SECRET: who}}`, a difference whose path holds a token.
"""

from __future__ import annotations

from aiohttp import web

BACKEND_SECRET = "sess-9f8e7d6c5b4a39281706"  # the session cookie both backends set
KEY_SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"  # a GitHub token used as a JSON key


def store_app(*, candidate: bool) -> web.Application:
    async def user(request: web.Request) -> web.Response:
        user_id = int(request.match_info["id"])
        plan = "pro" if candidate and user_id % 2 == 0 else "free"
        return web.json_response({"id": user_id, "plan": plan})

    async def same(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "ok": True})

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        response = web.json_response(
            {
                "who": "candidate" if candidate else "primary",
                "query": request.query_string,
                "authorization": request.headers.get("Authorization", ""),
                "cookie": request.headers.get("Cookie", ""),
                "sent": body.decode("utf-8", "replace"),
                "session_token": BACKEND_SECRET,
            }
        )
        response.headers.add("Set-Cookie", f"session={BACKEND_SECRET}; Path=/; HttpOnly")
        return response

    async def keyed(request: web.Request) -> web.Response:
        return web.json_response({"sessions": {KEY_SECRET: "candidate" if candidate else "primary"}})

    app = web.Application()
    app.router.add_get("/keyed", keyed)
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/same/{id}", same)
    app.router.add_route("*", "/echo", echo)
    return app
