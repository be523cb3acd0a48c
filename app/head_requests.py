"""HEAD wherever GET is served (RFC 9110 §9.3.2): uptime checkers probe with it, and got 405.

FastAPI routes answer only the methods they declare; declaring HEAD on each GET route would also list each one
twice on the OpenAPI page. ``HeadAsGet`` instead serves a HEAD request as its GET and sends the answer's status
and headers (Content-Length included) without the body. Routes without GET still answer 405.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif not message.get("more_body", False):  # the body's end (or a whole file): end an empty body
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        # A copy: the layers outside (telemetry) still see the HEAD the client sent.
        await self.app({**scope, "method": "GET"}, receive, headers_only)
