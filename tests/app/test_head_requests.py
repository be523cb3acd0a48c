"""HEAD answers like GET without a body (RFC 9110 §9.3.2): uptime checkers probe with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.app_client import fake_app_client, wait_ready


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path) as client:
        yield wait_ready(client)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/models", "/styles", "/", "/metrics", "/openapi.json"])
def test_head_answers_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path != "/metrics":  # the scrape counts itself, so its length changes
        assert head.headers.get("content-length") == got.headers.get("content-length")


def test_head_on_a_route_without_get_is_still_refused(client: TestClient) -> None:
    response = client.head("/detect")
    assert response.status_code == 405 and "POST" in response.headers["allow"]


def test_head_is_counted_under_its_own_method_and_the_route_template(client: TestClient) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.head("/styles").status_code == 200
    text = client.get("/metrics").text
    assert 'deepcanvas_requests_total{method="HEAD",route="/healthz",status="200"} 1.0' in text
    assert 'deepcanvas_requests_total{method="HEAD",route="/styles",status="200"} 1.0' in text


def test_the_openapi_page_lists_no_head_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert all("head" not in operations for operations in paths.values())
    assert "get" in paths["/healthz"] and "get" in paths["/models"]
