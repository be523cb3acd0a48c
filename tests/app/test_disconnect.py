"""``CancelOnDisconnect`` on a bare ASGI app: a client that leaves before its answer cancels the request."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.disconnect import CLIENT_CLOSED, CancelOnDisconnect


class SlowApp:
    """Reads the body, then works for ``seconds`` before answering 200; records how it ended."""

    def __init__(self, seconds: float, answer_first: bool = False) -> None:
        self.seconds = seconds
        self.answer_first = answer_first
        self.ended = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        try:
            if self.answer_first:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        if not self.answer_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        self.ended = "finished"


def _client(leave_after: float | None) -> tuple[Receive, list[Message]]:
    """An upload in two chunks, then a disconnect after ``leave_after`` s (None: the client waits)."""
    messages: list[Message] = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(leave_after if leave_after is not None else 3600)
        return {"type": "http.disconnect"}

    return receive, []


def _scope(path: str, root_path: str = "") -> Scope:
    return {"type": "http", "method": "POST", "path": root_path + path, "root_path": root_path, "headers": []}


async def _serve(
    app: SlowApp, path: str, leave_after: float | None, root_path: str = ""
) -> tuple[list[Message], float]:
    receive, sent = _client(leave_after)

    async def send(message: Message) -> None:
        sent.append(message)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await CancelOnDisconnect(app)(_scope(path, root_path), receive, send)
    return sent, loop.time() - started


def test_a_client_that_leaves_cancels_its_inference_and_is_recorded_as_499() -> None:
    app = SlowApp(seconds=30)
    sent, seconds = asyncio.run(_serve(app, "/stylize", leave_after=0.05))
    assert app.ended == "cancelled" and seconds < 5
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [CLIENT_CLOSED]


def test_behind_a_path_prefix_the_model_routes_are_still_watched() -> None:
    app = SlowApp(seconds=30)
    sent, seconds = asyncio.run(_serve(app, "/stylize", leave_after=0.05, root_path="/api"))
    assert app.ended == "cancelled" and seconds < 5
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [CLIENT_CLOSED]


def test_a_client_that_waits_gets_its_answer() -> None:
    app = SlowApp(seconds=0.05)
    sent, _ = asyncio.run(_serve(app, "/detect", leave_after=None))
    assert app.ended == "finished"
    assert sent[0]["status"] == 200 and sent[-1]["body"] == b"done"


def test_once_the_answer_has_started_a_disconnect_cancels_nothing() -> None:
    app = SlowApp(seconds=0.2, answer_first=True)
    sent, _ = asyncio.run(_serve(app, "/classify", leave_after=0.01))
    assert app.ended == "finished" and sent[0]["status"] == 200


@pytest.mark.parametrize("path", ["/identities", "/admin/params", "/identities/abc/faces"])
def test_routes_that_write_finish_what_they_started(path: str) -> None:
    app = SlowApp(seconds=0.2)
    sent, _ = asyncio.run(_serve(app, path, leave_after=0.01))
    assert app.ended == "finished" and sent[0]["status"] == 200


def test_a_cancellation_that_is_not_the_clients_still_propagates() -> None:
    async def main() -> str:
        app = SlowApp(seconds=30)
        task = asyncio.create_task(_serve(app, "/detect", leave_after=None))
        await asyncio.sleep(0.05)
        task.cancel()  # a shutdown, say
        with pytest.raises(asyncio.CancelledError):
            await task
        return app.ended

    assert asyncio.run(main()) == "cancelled"


def test_the_app_reading_again_after_the_body_sees_the_disconnect_too() -> None:
    """The watcher owns the connection after the body; the app's own receive() waits on it, not on a second
    read, so it neither hangs nor steals the disconnect: the request is cancelled while it waits."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        try:
            seen.append((await receive())["type"])  # e.g. Starlette's is_disconnected or a streaming response
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    receive, _ = _client(leave_after=0.05)

    async def send(message: Message) -> None:
        pass

    asyncio.run(CancelOnDisconnect(app)(_scope("/detect"), receive, send))
    assert seen == ["cancelled"]
