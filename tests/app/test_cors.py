"""CORS in-process: off by default; with ``cors_origins`` a listed origin's page may call and read the answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.images import face_like_photo

APP = "https://app.example.com"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-request-id"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path, cors_origins=f"{APP},http://127.0.0.1:3000", max_upload_bytes=65536) as client:
        yield wait_ready(client)


def test_without_cors_origins_no_cors_header_is_sent(tmp_path: Path) -> None:
    with fake_app_client(tmp_path) as client:
        response = client.get("/healthz", headers={"Origin": APP})
        assert not [name for name in response.headers if name.startswith("access-control-")]
        assert client.options("/detect", headers={"Origin": APP} | PREFLIGHT).status_code == 405


def test_a_listed_origin_passes_the_preflight(client: TestClient) -> None:
    response = client.options("/detect", headers={"Origin": APP} | PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed and "x-request-id" in allowed and "authorization" in allowed


@pytest.mark.parametrize(
    "origin, request_method, status_text",
    [
        ("https://other.example.com", "POST", "Disallowed CORS origin"),
        ("https://app.example.com.evil.example", "POST", "Disallowed CORS origin"),
        (APP, "PUT", "Disallowed CORS method"),
    ],
)
def test_an_origin_or_method_not_listed_fails_the_preflight_with_a_400(
    client: TestClient, origin: str, request_method: str, status_text: str
) -> None:
    response = client.options("/detect", headers={"Origin": origin, "Access-Control-Request-Method": request_method})
    assert response.status_code == 400
    assert status_text in response.text
    if origin != APP:
        assert "access-control-allow-origin" not in response.headers


def test_an_answer_to_a_listed_origin_names_it_and_exposes_the_service_headers(client: TestClient) -> None:
    photo = face_like_photo(320, 240)
    response = client.post("/detect", files={"image": ("p.jpg", photo, "image/jpeg")}, headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {"server-timing", "x-request-id", "retry-after"} <= exposed
    assert "Origin" in response.headers["vary"]
    other = client.post(
        "/detect", files={"image": ("p.jpg", photo, "image/jpeg")}, headers={"Origin": "https://x.example"}
    )
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_errors_from_the_outer_layers_carry_the_header_so_a_page_can_read_them(client: TestClient) -> None:
    too_big = b"\xff\xd8" + b"\0" * 70_000  # over max_upload_bytes: the body limit answers, outside the routes
    response = client.post("/detect", files={"image": ("p.jpg", too_big, "image/jpeg")}, headers={"Origin": APP})
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == APP
    empty = client.post("/detect", files={"image": ("p.jpg", b"", "image/jpeg")}, headers={"Origin": APP})
    assert empty.status_code == 400 and empty.headers["access-control-allow-origin"] == APP


def test_a_500_can_be_read_by_a_listed_origin_and_names_its_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Starlette answers an error no handler took from outside every middleware: the 500 lacked the CORS headers,
    so a page on another origin saw a "CORS error" and nothing of the answer, nor its request id to report."""
    settings = Settings(
        store=make_fake_store(tmp_path / "store").as_uri(), cache_dir=tmp_path / "cache", cors_origins=APP
    )  # type: ignore[arg-type]
    app = create_app(settings, fake_plans())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.get("/boom", headers={"Origin": APP, "X-Request-ID": "boom-2"})
    assert failed.status_code == 500 and failed.json() == {"detail": "internal error", "code": "internal_error"}
    assert failed.headers["access-control-allow-origin"] == APP
    assert failed.headers["x-request-id"] == "boom-2" and "total;dur=" in failed.headers["server-timing"]
    tracebacks = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(tracebacks) == 1  # logged once, by us


def test_a_500_from_a_dependency_names_only_a_listed_origin_and_counts_as_a_500(tmp_path: Path) -> None:
    """Through a plain ASGI client: a failing dependency is answered inside CORS as well, a page of another origin
    still gets no CORS header (only its request id), and the metrics count both answers as 500s."""
    store = make_fake_store(tmp_path / "store")
    app = create_app(Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", cors_origins=APP), fake_plans())

    def broken() -> None:
        raise RuntimeError("broken dependency")

    @app.get("/broken", dependencies=[Depends(broken)])
    def never_reached() -> None:
        raise AssertionError("the dependency failed first")

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://dc") as client:
            listed = await client.get("/broken", headers={"Origin": APP, "X-Request-ID": "dep-1"})
            other = await client.get("/broken", headers={"Origin": "https://other.example.com"})
            return listed, other, await client.get("/metrics")

    listed, other, metrics = asyncio.run(scenario())
    for failed in (listed, other):
        assert failed.status_code == 500 and failed.json() == {"detail": "internal error", "code": "internal_error"}
    assert listed.headers["access-control-allow-origin"] == APP and listed.headers["x-request-id"] == "dep-1"
    assert "access-control-allow-origin" not in other.headers and other.headers["x-request-id"]
    assert 'deepcanvas_requests_total{method="GET",route="/broken",status="500"} 2.0' in metrics.text
