"""What telemetry records at the edges: clients that leave mid-upload, refusals before routing, Python warnings."""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from app.main import create_app
from app.request_ids import request_id_from
from app.runtime import PARAMS_KEY
from app.settings import Settings
from app.telemetry import configure_logging
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.fakes import copy_as_version, fake_plans, make_fake_store

PART = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path, max_upload_bytes=4096) as client:
        yield wait_ready(client)


def _app(tmp_path: Path) -> FastAPI:
    store = make_fake_store(tmp_path / "store")
    return create_app(Settings(store=store.as_uri(), cache_dir=tmp_path / "cache"), fake_plans())  # type: ignore[arg-type]


def _leave_mid_upload(app: FastAPI) -> list[Message]:
    """POST /detect declaring 10 kB, send part of it, then close the connection; returns what the app sent."""
    headers = [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", b"10000")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/detect",
        "raw_path": b"/detect",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": PART + b"x" * 100, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_that_leaves_mid_upload_is_recorded_as_499_and_sent_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(tmp_path)
    with caplog.at_level(logging.INFO, logger="deepcanvas.access"):
        sent = _leave_mid_upload(app)
    assert sent == []
    text = app.state.metrics.render().decode()
    assert 'deepcanvas_requests_total{method="POST",route="/detect",status="499"} 1.0' in text
    assert 'status="400"' not in text
    logged = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "request"]
    assert [(f["status"], f["route"]) for f in logged] == [(499, "/detect")]


def test_a_413_before_routing_is_labelled_with_the_route(client: TestClient) -> None:
    response = client.post("/detect", content=b"x" * 5000, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    text = client.get("/metrics").text
    assert 'deepcanvas_requests_total{method="POST",route="/detect",status="413"} 1.0' in text


def test_a_503_while_draining_is_labelled_with_the_route(client: TestClient) -> None:
    client.app.state.gate.draining = True  # type: ignore[attr-defined]
    refused = client.post("/classify", files={"image": ("p.jpg", b"x")})
    assert refused.status_code == 503 and refused.json()["code"] == "shutting_down"
    assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
    assert client.get("/styles/some-style/image").status_code == 503
    text = client.get("/metrics").text
    assert 'deepcanvas_requests_total{method="POST",route="/classify",status="503"} 1.0' in text
    assert 'deepcanvas_requests_total{method="GET",route="/styles/{name}/image",status="503"} 1.0' in text


def test_unknown_paths_are_still_unmatched(client: TestClient) -> None:
    too_large = client.post("/nowhere", content=b"x" * 5000)
    assert too_large.status_code == 413 and too_large.json()["code"] == "payload_too_large"
    unknown = client.get("/nowhere")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found", "code": "not_found"}
    assert 'route="unmatched",status="413"' in client.get("/metrics").text


def test_a_streamed_body_over_the_limit_closes_the_connection(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield PART
        for _ in range(10):
            yield b"x" * 1024

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = client.post("/detect", content=chunks(), headers=headers)
    assert response.status_code == 413, response.text
    assert response.headers["connection"] == "close"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("py.warnings").filters.clear()


def _corrupt_exif() -> None:
    warnings.warn("Corrupt EXIF data.  Expecting to read 12 bytes but only got 4. ", UserWarning, stacklevel=1)


def test_python_warnings_come_out_as_one_json_line_each(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")  # here: the handler writes to the stderr this test captures
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as if each request reset the warnings registry
        for _ in range(3):
            _corrupt_exif()
        warnings.warn("another thing", UserWarning, stacklevel=1)
    lines = capsys.readouterr().err.splitlines()
    documents = [json.loads(line) for line in lines]  # every line is JSON
    assert [d["logger"] for d in documents] == ["py.warnings", "py.warnings"]
    assert "UserWarning: Corrupt EXIF data." in documents[0]["message"]
    assert "another thing" in documents[1]["message"]
    assert all(d["level"] == "warning" for d in documents)


TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_line_written_while_serving_a_request_carries_its_id(
    restore_logging: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Only the access line named its request: error, audit and warning lines could not be joined with it."""
    configure_logging("info", "json")
    store = make_fake_store(tmp_path / "store")
    copy_as_version(store / "face-gender" / "v1", store / "face-gender" / "v2", "v2")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN)  # type: ignore[arg-type]
    app = create_app(settings, fake_plans())

    @app.get("/boom")
    def boom() -> None:
        warnings.warn("odd input", UserWarning, stacklevel=1)
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client, warnings.catch_warnings():
        warnings.simplefilter("always")
        wait_ready(client)
        etag = client.get("/admin/params", headers=AUTH).headers["etag"]
        patched = client.patch(
            "/admin/params", headers=AUTH | {"If-Match": etag, "X-Request-ID": "patch-1"}, json={"queue_size": 9}
        )
        assert patched.status_code == 200, patched.text
        activate = {"X-Request-ID": "activate-1"} | AUTH
        assert client.post("/admin/models/face-gender/activate", headers=activate, json={"version": "v2"}).is_success
        failed = client.get("/boom", headers={"X-Request-ID": "boom-1"})
        assert failed.status_code == 500 and failed.headers["x-request-id"] == "boom-1"
        (store / PARAMS_KEY).write_text('{"version": 7, "params": {"queue_size": -1}}')
        assert client.get("/admin/params", headers=AUTH | {"X-Request-ID": "store-1"}).status_code == 503
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    loggers: dict[str | None, set[str]] = {}
    for line in lines:
        loggers.setdefault(line.get("request_id"), set()).add(line["logger"])
    assert {"deepcanvas.access", "deepcanvas.audit"} <= loggers["patch-1"]  # params applied
    assert {"deepcanvas.access", "deepcanvas.audit", "deepcanvas.models"} <= loggers["activate-1"]  # loaded, swapped
    assert {"deepcanvas.access", "deepcanvas.errors", "py.warnings"} <= loggers["boom-1"]  # the 500's traceback
    assert {"deepcanvas.access", "deepcanvas.errors"} <= loggers["store-1"]  # the 503's warning
    started = [line for line in lines if line["message"].startswith("model detector ready")]
    assert started and all("request_id" not in line for line in started)  # start-up serves no request


@pytest.mark.parametrize("given", [b"", b"x" * 129, b"a b", b"abc\n", b"id;drop", "caf\u00e9".encode("latin-1")])
def test_a_client_request_id_that_is_not_sane_is_replaced(given: bytes) -> None:
    made = request_id_from(given)
    assert made != given.decode("latin-1") and len(made) == 32


def test_a_sane_client_request_id_is_kept() -> None:
    assert request_id_from(b"A-z_0.9:" + b"x" * 120) == "A-z_0.9:" + "x" * 120
