"""An ASGI middleware that bounds request bodies in size and time, without holding an unbounded one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import DeepCanvasError, PayloadTooLarge, refusal

# The rest of a refused body is never read: the connection ends with the answer (uvicorn closes it after a
# response that says so), or the server would go on receiving (and discarding) whatever the client sends.
CLOSE = {"Connection": "close"}


class BodyLimitMiddleware:
    """413 from ``Content-Length`` before reading, or as soon as a streamed body passes the limit.

    Either way, and after a 408, the connection is closed with the answer.
    """

    def __init__(self, app: ASGIApp, limit: Callable[[], int], timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            detail = f"request body of {declared.decode(errors='replace')} bytes exceeds {limit}"
            response = refusal(PayloadTooLarge(detail) if declared.isdigit() else DeepCanvasError(detail), CLOSE)
            await response(scope, receive, send)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def bounded_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() only waits for a disconnect: no deadline then
                return await receive()
            try:
                # A slow, trickling or stalled upload must not hold a connection and a worker forever.
                async with asyncio.timeout_at(deadline):  # a timer, where wait_for would start a task per message
                    message = await receive()
            except TimeoutError as error:
                raise HTTPException(408, f"request body not received within {self.timeout_s:g} s", CLOSE) from error
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise HTTPException(413, f"request body exceeds {limit} bytes", CLOSE)
            return message

        await self.app(scope, bounded_receive, send)
