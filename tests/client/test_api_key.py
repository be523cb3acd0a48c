"""The client's ``api_key``: sent on the model calls, never in place of the admin token."""

from __future__ import annotations

import asyncio

import httpx

from deepcanvas import AsyncClient, Client

DETECTED = {"model": {"name": "d", "version": "v1"}, "image": {"width": 4, "height": 3}, "detections": []}
ANSWERS = {
    "/detect": DETECTED,
    "/models": {"store": "file:///s", "models": []},
    "/admin/params": {"version": 1, "updated_at": None, "updated_by": None, "params": {}},
}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=ANSWERS[request.url.path], headers={"ETag": '"1"'})


def test_a_key_goes_with_model_calls_and_the_admin_token_with_admin_calls() -> None:
    seen: dict[str, str | None] = {}

    def record(request: httpx.Request) -> httpx.Response:
        seen[request.url.path] = request.headers.get("authorization")
        return _answer(request)

    with Client("http://dc", transport=httpx.MockTransport(record), admin_token="admin", api_key="key-123") as dc:
        dc.detect(b"x")
        dc.models()
        dc.params()
    assert seen == {"/detect": "Bearer key-123", "/models": "Bearer key-123", "/admin/params": "Bearer admin"}


def test_without_a_key_no_authorization_is_sent() -> None:
    seen: list[str | None] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return _answer(request)

    with Client("http://dc", transport=httpx.MockTransport(record)) as dc:
        dc.detect(b"x")

    async def run() -> None:
        async with AsyncClient("http://dc", transport=httpx.MockTransport(record), api_key="key-456") as dc:
            await dc.detect(b"x")

    asyncio.run(run())
    assert seen == [None, "Bearer key-456"]
