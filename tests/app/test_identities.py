"""The identity routes in-process: real app, manager, SQLite database and index; fake detector and embedder."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.deps import get_gallery
from app.identities.database import open_engine
from app.identities.gallery import IdentityGallery
from app.main import create_app
from app.request_ids import RequestIdFilter
from app.settings import Settings
from tests.support.app_client import wait_ready
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.identity_fakes import add_fake_embedder, identity_plans, people_photo

TOKEN = "s3cret-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ADA, BOB, CY, STRANGER, NOBODY = (200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 10), (0, 0, 0)


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    store = tmp_path / "store"
    if not store.exists():
        make_fake_store(store)
        add_fake_embedder(store)
    return Settings(  # type: ignore[arg-type]
        store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN, identity_poll_s=0.2, **overrides
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), identity_plans())) as client:
        yield wait_ready(client)


def photos(*people: tuple[int, int, int], name: str = "p") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (f"{name}{i}.png", people_photo(person), "image/png")) for i, person in enumerate(people)]


def enrol(client: TestClient, name: str, *people: tuple[int, int, int]) -> dict[str, object]:
    response = client.post("/identities", data={"name": name}, files=photos(*people), headers=ADMIN)
    assert response.status_code == 201, response.text
    return dict(response.json())


def identify(client: TestClient, *people: tuple[int, int, int], **data: str) -> list[dict[str, object]]:
    files = {"image": ("q.png", people_photo(*people), "image/png")}
    response = client.post("/identify", files=files, data=data)
    assert response.status_code == 200, response.text
    return list(response.json()["faces"])


def test_an_enrolled_person_is_named_and_a_stranger_is_not(client: TestClient) -> None:
    ada = enrol(client, "Ada Lovelace", ADA, ADA)
    assert (ada["name"], ada["faces"]) == ("Ada Lovelace", 2)
    assert str(ada["created_at"]).endswith(("Z", "+00:00"))
    enrol(client, "Bob", BOB)
    assert identify(client, NOBODY) == []  # no face: an answer, as from /detect (test_identity_inputs.py)
    faces = identify(client, ADA, NOBODY, STRANGER)
    assert [f["box"] for f in faces] == [[8, 8, 56, 56], [136, 8, 184, 56]]
    assert faces[0]["identity"] == {"id": ada["id"], "name": "Ada Lovelace", "similarity": pytest.approx(1.0)}
    assert faces[1]["identity"] is None
    assert [c["name"] for c in faces[0]["candidates"]] == ["Ada Lovelace"]  # type: ignore[union-attr]
    assert faces[1]["candidates"] == []  # Bob is enrolled, but this stranger is not like him: his name stays unsaid


def test_identify_uses_the_calibrated_threshold_for_the_gallery_size_unless_asked(client: TestClient) -> None:
    enrol(client, "Ada", ADA)
    response = client.post("/identify", files={"image": ("q.png", people_photo(BOB))}).json()
    assert (response["threshold"], response["gallery_size"]) == (0.80, 1)
    assert identify(client, ADA, threshold="0.999")[0]["identity"]["name"] == "Ada"  # type: ignore[index]
    assert identify(client, BOB, threshold="0.9")[0] == {"box": [8, 8, 56, 56], "identity": None, "candidates": []}
    assert len(identify(client, ADA, top_k="1")[0]["candidates"]) == 1  # type: ignore[arg-type]
    for bad in ({"threshold": "1.5"}, {"threshold": "0.5"}, {"threshold": "-1"}, {"top_k": "0"}):
        answer = client.post("/identify", files={"image": ("q.png", people_photo(ADA))}, data=bad)
        assert answer.status_code == 422 and next(iter(bad)) in answer.json()["detail"]


@pytest.mark.parametrize(("people", "found"), [((NOBODY,), "no face"), (((ADA), (BOB)), "2 faces")])
def test_enrolment_refuses_a_photo_without_exactly_one_face_and_names_it(
    client: TestClient, people: tuple[tuple[int, int, int], ...], found: str
) -> None:
    files = [*photos(ADA), ("image", ("group.png", people_photo(*people), "image/png"))]
    response = client.post("/identities", data={"name": "Ada"}, files=files, headers=ADMIN)
    assert response.status_code == 422
    assert "'group.png'" in response.json()["detail"] and found in response.json()["detail"]
    assert client.get("/identities", headers=ADMIN).json()["total"] == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Ada\x00Lovelace", "Ada\tLovelace", "Ada\nLovelace"])
def test_enrolment_refuses_an_empty_or_too_long_name(client: TestClient, name: str) -> None:
    response = client.post("/identities", data={"name": name}, files=photos(ADA), headers=ADMIN)
    assert response.status_code == 422 and "name" in response.json()["detail"]


def test_identity_routes_need_the_admin_token(client: TestClient) -> None:
    assert client.post("/identities", data={"name": "Ada"}, files=photos(ADA)).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/identities", headers=wrong).status_code == 403
    assert client.delete("/identities/abc", headers=wrong).status_code == 403
    assert "Bearer" in client.get("/identities").json()["detail"]


def test_the_token_is_checked_before_the_body_it_would_carry(client: TestClient, tmp_path: Path) -> None:
    """A body the route cannot read (JSON where it takes a photo, a name sent twice) is judged only once the caller
    has passed: the token's answer comes first, and without admin the routes do not exist, whatever the body."""
    wrong = {"Authorization": "Bearer nope-nope-nope-nope"}
    assert client.post("/identities", json={"name": "Ada"}).status_code == 401
    assert client.post("/identities", json={"name": "Ada"}, headers=wrong).status_code == 403
    twice = client.post("/identities", data={"name": ["Ada", "Bob"]}, files=photos(ADA), headers=wrong)
    assert twice.status_code == 403
    assert client.get("/identities?limit=1&limit=2", headers=wrong).status_code == 403
    # with the token, the same bodies get the form's own answers
    answer = client.post("/identities", json={"name": "Ada"}, headers=ADMIN)
    assert answer.status_code == 415 and "multipart/form-data" in answer.json()["detail"]
    answer = client.post("/identities", data={"name": ["Ada", "Bob"]}, files=photos(ADA), headers=ADMIN)
    assert answer.status_code == 422 and "name: sent 2 times" in answer.json()["detail"]
    answer = client.get("/identities?limit=1&limit=2", headers=ADMIN)
    assert answer.status_code == 422 and "limit" in answer.json()["detail"]
    assert client.get("/identities", headers=ADMIN).json()["identities"] == []  # nothing was enrolled by them
    off = _settings(tmp_path).model_copy(update={"admin_token": None})
    with TestClient(create_app(off, identity_plans())) as admin_off:
        wait_ready(admin_off)
        for body in ({"json": {"name": "Ada"}}, {"data": {"name": ["Ada", "Bob"]}, "files": photos(ADA)}):
            assert admin_off.post("/identities", headers=wrong, **body).status_code == 404  # type: ignore[arg-type]


def test_a_method_the_path_does_not_serve_is_a_405_listing_every_method_it_does(client: TestClient) -> None:
    """Two routes serve /identities (GET and POST) and two /identities/{id}: the Allow header names all of them,
    not only the first route's."""
    for path, allowed in (("/identities", "GET, HEAD, POST"), ("/identities/abc", "DELETE, GET, HEAD")):
        response = client.put(path, headers=ADMIN)
        assert response.status_code == 405 and response.headers["allow"] == allowed, (path, response.headers)
        assert response.json()["code"] == "method_not_allowed"


def test_listing_pages_through_identities_oldest_first(client: TestClient) -> None:
    ids = [enrol(client, name, colour)["id"] for name, colour in (("A", ADA), ("B", BOB), ("C", CY))]
    first = client.get("/identities", params={"limit": 2}, headers=ADMIN).json()
    second = client.get("/identities", params={"limit": 2, "offset": 2}, headers=ADMIN).json()
    assert [i["id"] for i in first["identities"] + second["identities"]] == ids
    assert (first["total"], first["limit"], second["offset"]) == (3, 2, 2)
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}):
        response = client.get("/identities", params=bad, headers=ADMIN)
        assert response.status_code == 422 and next(iter(bad)) in response.json()["detail"]


def test_faces_added_to_an_identity_are_counted_and_matched(client: TestClient) -> None:
    ada = enrol(client, "Ada", ADA)
    unlike = {"same_person_check": "false"}  # the fake embedder's photos of one person are all one colour
    response = client.post(f"/identities/{ada['id']}/faces", data=unlike, files=photos(CY), headers=ADMIN)
    assert response.status_code == 200 and response.json()["faces"] == 2
    assert identify(client, CY)[0]["identity"]["id"] == ada["id"]  # type: ignore[index]
    assert client.get(f"/identities/{ada['id']}", headers=ADMIN).json()["faces"] == 2


def test_a_deleted_identity_is_gone_and_never_matched_again(client: TestClient) -> None:
    ada = enrol(client, "Ada", ADA)
    assert client.delete(f"/identities/{ada['id']}", headers=ADMIN).status_code == 204
    assert identify(client, ADA)[0] == {"box": [8, 8, 56, 56], "identity": None, "candidates": []}
    time.sleep(0.5)  # a few polls of the database later, still gone
    assert identify(client, ADA)[0]["candidates"] == []
    assert client.get(f"/identities/{ada['id']}", headers=ADMIN).status_code == 404
    assert client.delete(f"/identities/{ada['id']}", headers=ADMIN).status_code == 404
    assert client.post(f"/identities/{ada['id']}/faces", files=photos(ADA), headers=ADMIN).status_code == 404


def test_gallery_changes_are_audit_logged_by_id_with_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Enrolments, added faces and deletions (changes to personal data) wrote no audit line at all."""
    caplog.handler.addFilter(RequestIdFilter())  # as configure_logging's handler does
    with caplog.at_level(logging.INFO, logger="deepcanvas.audit"):
        enrolled = client.post(
            "/identities", data={"name": "Ada Lovelace"}, files=photos(ADA), headers=ADMIN | {"X-Request-ID": "enrol-1"}
        )
        assert enrolled.status_code == 201
        ada = enrolled.json()
        more = client.post(
            f"/identities/{ada['id']}/faces",
            data={"same_person_check": "false"},
            files=photos(CY),
            headers=ADMIN | {"X-Request-ID": "add-1"},
        )
        assert more.status_code == 200
        gone = client.delete(f"/identities/{ada['id']}", headers=ADMIN | {"X-Request-ID": "delete-1"})
        assert gone.status_code == 204
    lines = [(r.request_id, r.fields) for r in caplog.records if r.name == "deepcanvas.audit"]  # type: ignore[attr-defined]
    assert lines, "no audit line"
    who = lines[0][1]["who"]
    assert who == "admin@testclient"  # the caller's address: no X-Admin-User sent
    checked = {"same_person_check": True}
    unchecked = {"same_person_check": False}  # an override of the check is on the record
    assert lines == [
        ("enrol-1", {"event": "identity.enrolled", "who": who, "identity": ada["id"], "faces": 1} | checked),
        ("add-1", {"event": "identity.faces_added", "who": who, "identity": ada["id"], "faces": 2} | unchecked),
        ("delete-1", {"event": "identity.deleted", "who": who, "identity": ada["id"]}),
    ]
    assert "Ada" not in json.dumps(lines) + caplog.text  # the logs outlive a deletion: no name in them


def test_unknown_ids_are_404_with_a_detail(client: TestClient) -> None:
    response = client.get("/identities/0123456789abcdef", headers=ADMIN)
    assert response.status_code == 404 and "0123456789abcdef" in response.json()["detail"]


def test_verify_compares_the_largest_faces_and_says_when_it_chose(client: TestClient) -> None:
    def verify(a: bytes, b: bytes) -> dict[str, object]:
        files = {"image_a": ("a.png", a), "image_b": ("b.png", b)}
        response = client.post("/verify", files=files)
        assert response.status_code == 200, response.text
        return dict(response.json())

    same = verify(people_photo(ADA), people_photo(ADA))
    assert (same["same"], same["distance"], same["threshold"]) == (True, pytest.approx(0.0, abs=1e-6), 0.55)
    assert same["a"] == {"box": [8, 8, 56, 56], "faces_found": 1, "largest": False}
    other = verify(people_photo(ADA), people_photo(BOB, CY))
    assert other["same"] is False and other["distance"] > 1  # type: ignore[operator]
    assert other["b"]["faces_found"] == 2 and other["b"]["largest"] is True  # type: ignore[index]
    empty = client.post(
        "/verify", files={"image_a": ("a.png", people_photo(ADA)), "image_b": ("b.png", people_photo(NOBODY))}
    )
    assert empty.status_code == 422 and "image_b 'b.png': no face" in empty.json()["detail"]


def test_verify_echoes_a_threshold_of_minus_zero_as_zero(client: TestClient) -> None:
    files = {"image_a": ("a.png", people_photo(ADA)), "image_b": ("b.png", people_photo(ADA))}
    response = client.post("/verify", files=files, data={"threshold": "-0"})
    assert response.status_code == 200, response.text
    assert '"threshold":0.0' in response.text.replace(" ", "") and '"threshold":-0.0' not in response.text


def test_detect_adds_five_landmarks_per_face_only_when_asked(client: TestClient) -> None:
    files = {"image": ("p.png", people_photo(ADA, BOB))}
    plain = client.post("/detect", files=files).json()["detections"]
    marked = client.post("/detect", files=files, data={"landmarks": "true"}).json()["detections"]
    assert "landmarks" not in plain[0]
    assert [len(d["landmarks"]) for d in marked] == [5, 5]
    assert marked[1]["landmarks"][2] == [96.0, 32.0]  # the fake's centre point of the second face


def test_without_an_embedder_in_the_store_the_service_is_ready_and_identity_says_why(tmp_path: Path) -> None:
    store = make_fake_store(tmp_path / "store")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN)  # type: ignore[arg-type]
    with TestClient(create_app(settings, fake_plans())) as client:
        ready = wait_ready(client).get("/readyz").json()
        assert ready["models"]["embedder"]["state"] == "absent"
        response = client.post("/identify", files={"image": ("q.png", people_photo(ADA))})
        assert response.status_code == 503 and "face embedder" in response.json()["detail"]
        assert "face-embedder" in response.json()["detail"] and response.headers["retry-after"]
        assert client.get("/identities", headers=ADMIN).status_code == 503


def test_descriptors_of_another_embedder_version_are_never_compared(client: TestClient, tmp_path: Path) -> None:
    ada = enrol(client, "Ada", ADA)
    add_fake_embedder(tmp_path / "store", "v2", alias=None)
    response = client.post("/admin/models/face-embedder/activate", json={"version": "v2"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert identify(client, ADA)[0]["candidates"] == []
    record = client.get(f"/identities/{ada['id']}", headers=ADMIN).json()
    assert (record["faces"], record["stale_faces"]) == (0, 1)


def test_a_database_outage_answers_503_for_writes_and_identify_keeps_serving(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with TestClient(create_app(settings, identity_plans())) as client:
        ada = enrol(wait_ready(client), "Ada", ADA)
        database = settings.cache_dir / "identities.sqlite3"
        client.app.state.gallery.engine.dispose()  # type: ignore[attr-defined]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)  # the schema is gone: every query fails
        response = client.post("/identities", data={"name": "Bob"}, files=photos(BOB), headers=ADMIN)
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "database" in response.json()["detail"]
        assert client.get("/identities", headers=ADMIN).status_code == 503
        time.sleep(0.5)  # polls fail meanwhile
        assert identify(client, ADA)[0]["identity"]["id"] == ada["id"]  # type: ignore[index]


def test_an_unreachable_postgresql_answers_503_with_retry_after_not_500(client: TestClient) -> None:
    away = IdentityGallery(open_engine("postgresql+psycopg://deepcanvas@127.0.0.1:1/identities", timeout_s=1))
    client.app.dependency_overrides[get_gallery] = lambda: away  # type: ignore[attr-defined]
    try:
        enrolled = client.post("/identities", data={"name": "Ada"}, files=photos(ADA), headers=ADMIN)
        listed = client.get("/identities", headers=ADMIN)
        identified = client.post("/identify", files={"image": ("q.png", people_photo(ADA))})
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
        away.close()
    for response in (enrolled, listed, identified):
        assert response.status_code == 503 and response.headers["retry-after"] == "5", response.text
    assert all("database" in response.json()["detail"] for response in (enrolled, listed, identified))


def test_identify_loads_the_index_itself_when_it_comes_before_the_first_poll(client: TestClient) -> None:
    """/readyz turns 200 once the models load; the replica's first poll of the database may come later."""
    ada = enrol(client, "Ada", ADA)
    fresh = IdentityGallery(client.app.state.gallery.engine)  # type: ignore[attr-defined]
    assert fresh.index is None  # as a replica is between readiness and its first poll
    client.app.dependency_overrides[get_gallery] = lambda: fresh  # type: ignore[attr-defined]
    try:
        assert identify(client, ADA)[0]["identity"]["id"] == ada["id"]  # type: ignore[index]
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_identify_never_names_an_enrolled_person_the_threshold_would_not(client: TestClient) -> None:
    """/identify needs no admin token: a name below the threshold would tell anyone who is enrolled."""
    enrol(client, "Ada", ADA)
    enrol(client, "Bob", BOB)
    for face in identify(client, STRANGER, NOBODY, top_k="100"):
        assert face["identity"] is None and face["candidates"] == []
    lowered = client.post("/identify", files={"image": ("q.png", people_photo(STRANGER))}, data={"threshold": "-1"})
    assert lowered.status_code == 422 and "may be raised, not lowered" in lowered.json()["detail"]
