"""PATCH /admin/params at its edges: JSON types, empty patches, If-Match forms, duplicate keys, who changed it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.runtime import PARAMS_KEY
from deepcanvas import Client
from tests.support.app_client import ready_admin_client
from tests.support.fakes import make_fake_store

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_fake_store(tmp_path / "store")


@pytest.fixture
def client(store: Path, tmp_path: Path) -> Iterator[TestClient]:
    with ready_admin_client(store, tmp_path, TOKEN) as client:
        yield client


def _etag(client: TestClient) -> str:
    return client.get("/admin/params", headers=AUTH).headers["etag"]


def _patch(client: TestClient, body: object, if_match: str | None = None, **headers: str) -> httpx.Response:
    sent = AUTH | {"If-Match": if_match or _etag(client)} | headers
    return client.patch("/admin/params", headers=sent, json=body)


@pytest.mark.parametrize(
    "patch",
    [
        {"queue_size": True},
        {"detector_conf": True},
        {"detector_iou": False},
        {"detector_max_det": "5"},
        {"classifier_threshold": "0.3"},
        {"max_upload_bytes": 4096.0},
    ],
)
def test_params_refuse_booleans_and_strings_where_numbers_belong(client: TestClient, patch: dict[str, object]) -> None:
    etag = _etag(client)
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": etag}, json=patch)
    assert response.status_code == 422, response.text
    assert next(iter(patch)) in response.json()["detail"]
    assert _etag(client) == etag  # nothing saved, nothing sent to the other replicas


def test_params_take_an_integer_where_a_number_belongs_and_round_trip(client: TestClient) -> None:
    patch = {"detector_conf": 1, "detector_iou": 0.5, "detector_max_det": 7, "batch_max_wait_ms": 3, "queue_size": 9}
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": _etag(client)}, json=patch)
    assert response.status_code == 200, response.text
    read = client.get("/admin/params", headers=AUTH)
    assert read.json() == response.json() and read.headers["etag"] == response.headers["etag"] == '"1"'
    assert read.json()["params"] | patch == read.json()["params"]
    again = client.patch("/admin/params", headers=AUTH | {"If-Match": read.headers["etag"]}, json=read.json()["params"])
    assert again.status_code == 200, again.text  # what GET answers, PATCH takes back


def test_the_python_client_updates_params(client: TestClient) -> None:
    with Client("http://testserver", admin_token=TOKEN, transport=client._transport, retries=0) as dc:
        document = dc.params()
        changed = dc.update_params({"detector_conf": 0.4, "queue_size": 12}, document.etag)
        assert changed.version == document.version + 1
        assert changed.params.detector_conf == 0.4 and changed.params.queue_size == 12
        assert dc.update_params({"queue_size": 13}, changed.version).params.queue_size == 13


def test_an_empty_patch_changes_nothing(client: TestClient, store: Path) -> None:
    first = client.patch("/admin/params", headers=AUTH | {"If-Match": _etag(client)}, json={"queue_size": 5})
    written = (store / "_runtime" / "params.json").read_bytes()
    empty = client.patch("/admin/params", headers=AUTH | {"If-Match": first.headers["etag"]}, json={})
    assert empty.status_code == 200, empty.text
    assert empty.headers["etag"] == first.headers["etag"] and empty.json() == first.json()
    assert (store / "_runtime" / "params.json").read_bytes() == written


def test_an_empty_patch_on_a_fresh_store_writes_no_document(client: TestClient, store: Path) -> None:
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": '"0"'}, json={})
    assert response.status_code == 200 and response.json()["version"] == 0
    assert not (store / "_runtime" / "params.json").exists()


def test_if_match_star_matches_whatever_version_exists(client: TestClient) -> None:
    assert _patch(client, {"queue_size": 5}).status_code == 200
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": "*"}, json={"queue_size": 6})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2 and response.json()["params"]["queue_size"] == 6


def test_if_match_may_list_several_etags(client: TestClient) -> None:
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": '"7", "0"'}, json={"queue_size": 6})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("if_match", ["0", "abc", '"0', "W/0", '"0" junk', ",", ""])
def test_a_malformed_if_match_is_a_bad_request(client: TestClient, if_match: str) -> None:
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": if_match}, json={"queue_size": 6})
    assert response.status_code == 400, response.text
    assert "If-Match" in response.json()["detail"] and "ETag" in response.json()["detail"]


@pytest.mark.parametrize("if_match", ['"5"', 'W/"5"', '"abc"'])
def test_a_well_formed_if_match_that_names_another_version_is_a_conflict(client: TestClient, if_match: str) -> None:
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": if_match}, json={"queue_size": 6})
    assert response.status_code == 409, response.text


def test_duplicate_keys_in_a_patch_are_refused(client: TestClient) -> None:
    etag = _etag(client)
    body = b'{"queue_size": 4, "queue_size": 8}'
    headers = AUTH | {"If-Match": etag, "Content-Type": "application/json"}
    response = client.patch("/admin/params", headers=headers, content=body)
    assert response.status_code == 422, response.text
    assert "queue_size" in response.json()["detail"] and "more than once" in response.json()["detail"]
    assert _etag(client) == etag


def test_x_admin_user_is_recorded_as_self_declared(
    client: TestClient, store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="deepcanvas.audit"):
        response = _patch(client, {"queue_size": 5}, **{"X-Admin-User": "alice"})
    assert response.status_code == 200
    who = response.json()["updated_by"]
    assert who.startswith("alice") and "self-declared" in who
    assert json.loads((store / "_runtime" / "params.json").read_text())["updated_by"] == who
    fields = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "params.applied"]
    assert fields and fields[-1]["who"] == who


def test_without_x_admin_user_the_token_holder_is_named_by_address(client: TestClient) -> None:
    who = _patch(client, {"queue_size": 5}).json()["updated_by"]
    assert who.startswith("admin@") and "self-declared" not in who


def test_the_openapi_page_documents_x_admin_user_as_unverified(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/admin/params"]["patch"]
    header = [p for p in operation["parameters"] if p["in"] == "header" and p["name"].lower() == "x-admin-user"]
    assert header and "self-declared" in header[0]["description"]
    assert "X-Admin-User" in operation["description"]
    assert "requestBody" in operation  # the patch body is still documented


def test_a_malformed_stored_document_is_a_503_naming_the_store_not_a_500(client: TestClient, store: Path) -> None:
    """A bad params.json in the store made GET and PATCH /admin/params answer 500 "internal error"."""
    (store / PARAMS_KEY).parent.mkdir(parents=True, exist_ok=True)
    (store / PARAMS_KEY).write_text('{"version": 7, "params": {"queue_size": -1}}')
    answer = client.get("/admin/params", headers=AUTH)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["detail"].startswith("the model store:")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_patch_with_nan_or_infinity_is_refused_as_not_finite(client: TestClient, constant: str) -> None:
    etag = _etag(client)
    headers = AUTH | {"If-Match": etag, "Content-Type": "application/json"}
    response = client.patch("/admin/params", headers=headers, content=f'{{"detector_conf": {constant}}}')
    assert response.status_code == 422, response.text
    assert "not a finite number" in response.json()["detail"] and constant in response.json()["detail"]
    assert _etag(client) == etag


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_a_415_on_both_admin_writes(client: TestClient, content_type: str | None) -> None:
    """FastAPI's own answer was a 422 saying the valid JSON object was "not a valid dictionary"."""
    headers = AUTH | {"If-Match": "*"} | ({"Content-Type": content_type} if content_type else {})
    patched = client.patch("/admin/params", headers=headers, content='{"detector_conf": 0.5}')
    activated = client.post("/admin/models/face-detector/activate", headers=headers, content='{"version": "v1"}')
    for response in (patched, activated):
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["detail"]
    as_json = client.patch("/admin/params", headers=AUTH | {"If-Match": "*"}, json={"detector_conf": 0.5})
    assert as_json.status_code == 200, as_json.text


def test_activate_refuses_a_key_it_does_not_know(client: TestClient) -> None:
    response = client.post("/admin/models/face-detector/activate", headers=AUTH, json={"version": "v1", "extra": 1})
    assert response.status_code == 422 and "extra" in response.json()["detail"]


def test_without_a_token_a_body_of_any_type_is_a_401_first(client: TestClient) -> None:
    """The content type is checked after the admin check: a caller without the token learns nothing more."""
    headers = {"If-Match": "*", "Content-Type": "text/plain"}
    assert client.patch("/admin/params", headers=headers, content="{}").status_code == 401
    assert client.post("/admin/models/face-detector/activate", headers=headers, content="{}").status_code == 401
    vendor = AUTH | {"If-Match": "*", "Content-Type": "application/vnd.deepcanvas+json"}
    assert client.patch("/admin/params", headers=vendor, content='{"detector_conf": 0.5}').status_code == 200
    loose = AUTH | {"If-Match": "*", "Content-Type": "text/x+json"}  # FastAPI parses application/*+json only
    assert client.patch("/admin/params", headers=loose, content='{"detector_conf": 0.5}').status_code == 415
