"""API keys in-process: off by default; with ``api_keys`` the model routes need one, checked before the body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from starlette.types import Message, Receive, Scope, Send

from app.auth import ApiKeyMiddleware, ApiKeys, plain_secret
from app.settings import Settings
from deepcanvas import Client, UsageError
from deepcanvas.credentials import header_safe
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.images import face_like_photo

KEY, OTHER_KEY = "first-key-0123456789", "second-key-abcdefghij"
PHOTO = face_like_photo(320, 240)
CALLS = [
    ("/detect", {"image": ("p.jpg", PHOTO, "image/jpeg")}, {}),
    ("/classify", {"image": ("p.jpg", PHOTO, "image/jpeg")}, {}),
    ("/stylize", {"content": ("p.jpg", PHOTO, "image/jpeg")}, {"style_name": "mosaic"}),
    ("/identify", {"image": ("p.jpg", PHOTO, "image/jpeg")}, {}),
    ("/verify", {"image_a": ("a.jpg", PHOTO, "image/jpeg"), "image_b": ("b.jpg", PHOTO, "image/jpeg")}, {}),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path, api_keys=f"{KEY}, {OTHER_KEY}", max_upload_bytes=1 << 20) as client:
        yield wait_ready(client)


def test_without_api_keys_the_model_routes_are_open(tmp_path: Path) -> None:
    with fake_app_client(tmp_path) as client:
        wait_ready(client)
        assert client.post("/detect", files={"image": ("p.jpg", PHOTO, "image/jpeg")}).status_code == 200
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


@pytest.mark.parametrize("path, files, data", CALLS, ids=[call[0] for call in CALLS])
def test_every_model_route_needs_a_key(client: TestClient, path: str, files: dict, data: dict) -> None:
    missing = client.post(path, files=files, data=data)
    assert missing.status_code == 401
    assert "API key" in missing.json()["detail"] and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post(path, files=files, data=data, headers={"Authorization": "Bearer not-a-key-of-this-service"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "invalid API key"
    assert (missing.json()["code"], wrong.json()["code"]) == ("unauthorized", "forbidden")
    for key in (KEY, OTHER_KEY):
        answered = client.post(path, files=files, data=data, headers={"Authorization": f"Bearer {key}"})
        assert answered.status_code not in (401, 403), answered.text  # the route's own answer (a fake model's)


@pytest.mark.parametrize("authorization", ["", "Bearer", "Bearer ", f"Basic {KEY}", KEY, f"Bearer {KEY}x"])
def test_anything_but_a_bearer_key_is_refused(client: TestClient, authorization: str) -> None:
    response = client.post("/detect", files={"image": ("p.jpg", PHOTO)}, headers={"Authorization": authorization})
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/styles", "/models", "/", "/openapi.json"])
def test_health_metrics_catalog_and_page_stay_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_a_caller_without_a_key_is_refused_before_its_body_is_read(client: TestClient) -> None:
    huge = b"\xff\xd8" + b"\0" * (2 << 20)  # over the body limit: with a key this is a 413
    assert client.post("/detect", files={"image": ("p.jpg", huge)}).status_code == 401
    with_key = client.post("/detect", files={"image": ("p.jpg", huge)}, headers={"Authorization": f"Bearer {KEY}"})
    assert with_key.status_code == 413


def test_the_docs_show_the_key_on_the_model_routes_only(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert schema["paths"]["/detect"]["post"]["security"] == [{"apiKey": []}]
    assert "401" in schema["paths"]["/stylize"]["post"]["responses"]
    assert "security" not in schema["paths"]["/styles"]["get"]


def test_refusals_are_counted_in_the_metrics(client: TestClient) -> None:
    client.post("/detect", files={"image": ("p.jpg", PHOTO)})
    assert 'route="/detect",status="401"' in client.get("/metrics").text


@pytest.mark.parametrize("value", ["short", f"{KEY},short", f"{KEY[:10]} {KEY[10:]}x", ",", f"{KEY}\x07", f"{KEY}é"])
def test_unusable_keys_stop_the_start_without_showing_them(value: str) -> None:
    with pytest.raises(ValidationError, match="api_keys") as raised:
        Settings(api_keys=value)  # type: ignore[arg-type]
    assert "short" not in str(raised.value) and KEY[:10] not in str(raised.value)


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_variable_leaves_the_routes_open(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DEEPCANVAS_API_KEYS", value)
    assert Settings().api_keys is None


def test_a_path_prefix_does_not_slip_past_the_key() -> None:
    """Behind a proxy's prefix (``root_path``) the scope's path holds the prefix; the route is still keyed."""
    reached: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    async def call(path: str, root_path: str) -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "root_path": root_path, "headers": []}
        await ApiKeyMiddleware(inner, ApiKeys.of(SecretStr(KEY)))(scope, receive, send)
        return sent

    refused = asyncio.run(call("/api/detect", "/api"))
    assert refused[0]["status"] == 401 and reached == []
    asyncio.run(call("/api/styles", "/api"))
    assert reached == ["/api/styles"]


@pytest.mark.parametrize(
    "key",
    [
        "k" * 16,
        "~!#$%&*+-./0123456789:;<=>?@[]^_`{|}",
        "padded-key-0123456789 ",
        "two words key 0123456789",
        "tab\tkey-0123456789",
        "line-break-key-0123456789\n",
        "non-ascii-key-0123456789-é",
        "delete-key-0123456789\x7f",
        "nbsp-key-0123456789\xa0",
    ],
)
def test_the_service_takes_exactly_the_long_keys_its_client_sends(key: str) -> None:
    """One rule, the client's (``deepcanvas.credentials.header_safe``), for the service's keys and token as for what
    the client puts in a header; the service asks for 16 characters at least besides."""
    sendable = header_safe(key)
    assert plain_secret(key) == sendable and not plain_secret(key[:15])
    try:
        Client("http://dc", api_key=key)
    except UsageError:
        assert not sendable
    else:
        assert sendable
