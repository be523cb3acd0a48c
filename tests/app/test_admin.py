"""Runtime parameters and model switching through the authenticated admin routes (in-process)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.objects import ObjectStore, StoreUnavailable, WriteConflict
from tests.support.app_client import ready_admin_client
from tests.support.fakes import DelegatingStore, copy_as_version, fake_plans, make_fake_store
from tests.support.images import face_like_photo

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = face_like_photo(160, 120)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = make_fake_store(tmp_path / "store")
    copy_as_version(store / "face-gender" / "v1", store / "face-gender" / "v2", "v2")
    return store


@pytest.fixture
def client(store: Path, tmp_path: Path) -> Iterator[TestClient]:
    with ready_admin_client(store, tmp_path, TOKEN) as client:
        yield client


def test_admin_routes_are_absent_without_a_configured_token(store: Path, tmp_path: Path) -> None:
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, fake_plans())) as client:
        assert client.get("/admin/params", headers=AUTH).status_code == 404
        assert client.post("/admin/models/face-gender/activate", json={"version": "v2"}).status_code == 404
        text = {"Content-Type": "text/plain", "If-Match": "*"}  # absent whatever the body: no 415 gives them away
        assert client.patch("/admin/params", headers=AUTH | text, content="{}").status_code == 404


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Basic abc"}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
def test_admin_token_is_required_and_checked(client: TestClient, headers: dict[str, str], status: int) -> None:
    assert client.get("/admin/params", headers=headers).status_code == status


def test_params_update_needs_the_current_etag(client: TestClient) -> None:
    first = client.get("/admin/params", headers=AUTH)
    etag = first.headers["etag"]
    assert first.json()["version"] == 0 and first.json()["params"]["classifier_threshold"] == 0.5
    assert client.patch("/admin/params", headers=AUTH, json={"classifier_threshold": 0.2}).status_code == 428
    changed = client.patch("/admin/params", headers=AUTH | {"If-Match": etag}, json={"classifier_threshold": 0.2})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != etag and changed.json()["params"]["classifier_threshold"] == 0.2
    stale = client.patch("/admin/params", headers=AUTH | {"If-Match": etag}, json={"classifier_threshold": 0.9})
    assert stale.status_code == 409


@pytest.mark.parametrize(
    "patch", [{"classifier_threshold": 2}, {"queue_size": 0}, {"nonsense": 1}, {"stylize_max_side": 5000}]
)
def test_invalid_params_are_refused_and_nothing_changes(client: TestClient, patch: dict[str, object]) -> None:
    etag = client.get("/admin/params", headers=AUTH).headers["etag"]
    response = client.patch("/admin/params", headers=AUTH | {"If-Match": etag}, json=patch)
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    assert client.get("/admin/params", headers=AUTH).headers["etag"] == etag


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'{"queue_size": ' + b"9" * 5000 + b"}", 422, "a number with more than 4300 digits"),
        (b'{"queue_size": "\xff"}', 400, "not valid JSON (its bytes are not UTF-8)"),
    ],
)
def test_a_body_the_json_parser_cannot_read_says_why_and_nothing_changes(
    client: TestClient, body: bytes, status: int, detail: str
) -> None:
    """FastAPI answers both with a bare 400 "There was an error parsing the body"."""
    etag = client.get("/admin/params", headers=AUTH).headers["etag"]
    headers = AUTH | {"If-Match": etag, "Content-Type": "application/json"}
    response = client.patch("/admin/params", headers=headers, content=body)
    assert response.status_code == status and detail in response.json()["detail"], response.text
    assert client.get("/admin/params", headers=AUTH).headers["etag"] == etag


def _patch(client: TestClient, patch: dict[str, object]) -> None:
    etag = client.get("/admin/params", headers=AUTH).headers["etag"]
    assert client.patch("/admin/params", headers=AUTH | {"If-Match": etag}, json=patch).status_code == 200


def test_params_change_what_requests_get(client: TestClient) -> None:
    def label() -> str:
        body = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"}).json()
        return str(body["faces"][0]["label"])

    assert label() == "female"  # the fake says female 0.75, male 0.25
    _patch(client, {"classifier_threshold": 0.2})
    assert label() == "male"
    _patch(client, {"max_upload_bytes": 2048})
    small = client.post("/classify", files={"image": ("p.jpg", b"\0" * 1000)}, data={"detect_faces": "false"})
    assert small.status_code == 415  # under the new body limit, then refused as an image
    assert client.post("/classify", files={"image": ("p.jpg", PHOTO)}).status_code == 413
    assert "deepcanvas_params_version 2.0" in client.get("/metrics").text


def test_classifier_min_score_parameter_is_the_default_a_request_may_override(client: TestClient) -> None:
    def label(**data: str) -> str:
        form = {"detect_faces": "false", **data}
        body = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data=form).json()
        return str(body["faces"][0]["label"])

    _patch(client, {"classifier_min_score": 0.9})  # the fake says female 0.75: below 0.9
    assert label() == "unknown"
    assert label(min_score="0.5") == "female"


def test_activate_swaps_versions_and_rollback_returns(client: TestClient, store: Path) -> None:
    def served_version() -> str:
        return client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"}).json()[
            "model"
        ]["version"]

    assert served_version() == "v1"
    switched = client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v2"})
    assert switched.status_code == 200, switched.text
    assert switched.json() == {"name": "face-gender", "role": "classifier", "version": "v2", "previous": "v1"}
    assert served_version() == "v2"
    assert (store / "_runtime" / "active.json").is_file()
    rolled = client.post("/admin/models/face-gender/rollback", headers=AUTH)
    assert rolled.json()["version"] == "v1" and served_version() == "v1"


@pytest.mark.parametrize("version, status", [("v9", 422), ("../v1", 422), ("http:--x", 422), ("", 422)])
def test_a_failed_activation_keeps_the_old_version_serving(client: TestClient, version: str, status: int) -> None:
    response = client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": version})
    assert response.status_code == status, response.text
    assert client.get("/readyz").json()["models"]["classifier"]["version"] == "v1"


def test_activation_of_a_corrupt_artifact_is_refused(client: TestClient, store: Path) -> None:
    (store / "face-gender" / "v2" / "weights.bin").write_bytes(b"tampered")
    response = client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v2"})
    assert response.status_code == 422 and "v1 keeps serving" in response.json()["detail"]
    assert client.get("/readyz").json()["models"]["classifier"]["version"] == "v1"


@pytest.mark.parametrize("name", ["..", "a%2Fb", "unknown-model"])
def test_unknown_or_unsafe_model_names_are_refused(client: TestClient, name: str) -> None:
    response = client.post(f"/admin/models/{name}/activate", headers=AUTH, json={"version": "v1"})
    assert response.status_code in (404, 422)


class RefusingWrites(DelegatingStore):
    """Delegates to a store, but every conditional write fails with ``error`` (the store down, or a race lost)."""

    def __init__(self, inner: ObjectStore, error: Exception) -> None:
        super().__init__(inner)
        self.error = error

    def write_if(self, key: str, data: bytes, tag: str | None) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error, status",
    [
        (StoreUnavailable("s3://models: put_object _runtime/active.json failed: EndpointConnectionError"), 503),
        (OSError(28, "No space left on device"), 503),
        (WriteConflict("_runtime/active.json changed since it was read"), 409),
    ],
)
def test_an_activation_the_store_cannot_record_does_not_happen(
    client: TestClient, store: Path, error: Exception, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    active = client.app.state.active  # type: ignore[attr-defined]
    active.objects = RefusingWrites(active.objects, error)
    with caplog.at_level(logging.INFO, logger="deepcanvas.audit"):
        response = client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v2"})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "v2 was not activated" in detail and "v1 keeps serving" in detail, detail
    if status == 503:
        assert "the model store" in detail and response.headers["retry-after"]
    # Nothing changed here either: the other replicas, which follow active.json, serve what this one serves.
    served = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"})
    assert served.json()["model"]["version"] == "v1"
    classifier = client.get("/readyz").json()["models"]["classifier"]
    assert classifier["version"] == "v1" and classifier["state"] == "ready"
    assert client.app.state.manager.status["classifier"].previous is None  # type: ignore[attr-defined]
    assert not (store / "_runtime" / "active.json").exists()
    events = [getattr(r, "fields", {}).get("event") for r in caplog.records if r.name == "deepcanvas.audit"]
    assert events == ["model.activation_not_recorded"]


def test_readiness_names_the_ref_each_model_was_last_switched_to(client: TestClient) -> None:
    def classifier() -> tuple[str, str]:
        model = client.get("/readyz").json()["models"]["classifier"]
        return model["ref"], model["version"]

    assert classifier() == ("stable", "v1")
    assert client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v2"}).status_code == 200
    assert classifier() == ("v2", "v2")  # not "stable", which names v1
    assert client.post("/admin/models/face-gender/rollback", headers=AUTH).status_code == 200
    assert classifier() == ("v1", "v1")
    assert client.post("/admin/models/face-gender/activate", headers=AUTH, json={"version": "v9"}).status_code == 422
    assert classifier() == ("v1", "v1")  # a failed activation changes nothing
    models = {m["role"]: m for m in client.get("/models").json()["models"]}
    assert models["classifier"]["version"] == "v1"
