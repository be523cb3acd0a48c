"""Inference for a client that has gone is not worth finishing: its request is cancelled.

uvicorn neither stops nor tells a request's handler when its client closes the connection: the handler runs on,
and its answer is dropped. A client that gives up on a slow ``/stylize`` (NST runs up to a minute), or a load
balancer that closes a connection, left its work queued, and a queue of abandoned requests delays the live ones
behind it. ``CancelOnDisconnect`` watches the connection of each inference request once its body has arrived
(after that, only a disconnect can come) and cancels the request's task when the client leaves before the
answer starts. A model slot then skips its queued items (``ModelSlot`` drops callers that left), a job waiting
for a slot's thread never starts, and NST stops at its next evaluation (``services``). Telemetry records such a
request with status 499 (nginx's "client closed request"): the answer goes nowhere.

Only the inference routes: they change nothing but caches, so stopping one half-way loses nothing. Routes that
write (enrolment, parameters, activation) finish what they started.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.model_routes import MODEL_PATHS, route_path

CLIENT_CLOSED = 499


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, paths: frozenset[str] = MODEL_PATHS) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) not in self.paths:
            await self.app(scope, receive, send)
            return
        handler = asyncio.current_task()
        assert handler is not None
        answering = False  # once the answer has started, it is finished whatever the client does
        gone = False
        watcher: asyncio.Task[Message] | None = None

        async def watch() -> Message:
            nonlocal gone
            message = await receive()
            while message["type"] != "http.disconnect":  # nothing else comes after the body; be safe anyway
                message = await receive()
            if not answering:
                gone = True
                handler.cancel()
            return message

        async def receive_watched() -> Message:
            nonlocal watcher
            if watcher is not None:  # the watcher owns the connection now: share what it sees
                return await asyncio.shield(watcher)
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                watcher = asyncio.create_task(watch(), name="watch-disconnect")
            return message

        async def send_watched(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_watched, send_watched)
        except asyncio.CancelledError:
            if not gone:
                raise  # a cancellation of our own (shutdown): not the client's doing
            handler.uncancel()
            # Nobody reads this answer (uvicorn drops what is sent after a disconnect); telemetry records it.
            await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
