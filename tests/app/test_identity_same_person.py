"""Enrolment refuses photos of different people as one identity (``app.identities.same_person``), unless asked not
to check: with the fake detector and embedder (a colour is a person), and with real faces (LFW photos from
../shared, the shipped detector and embedder), where the refusal must come from distances the embedder measured."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.identities.same_person import unlinked
from app.main import create_app
from app.model_plans import network_plan
from app.settings import EMBEDDED_STORE, Settings
from tests.app.test_identities import ADA, ADMIN, BOB, TOKEN, _settings, enrol, photos
from tests.support.app_client import wait_ready
from tests.support.fakes import fake_plans
from tests.support.identity_fakes import THRESHOLDS, identity_plans

UNCHECKED = {"same_person_check": "false"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), identity_plans())) as client:
        yield wait_ready(client)


def refusal_distances(detail: str) -> tuple[list[float], float]:
    """The distances a ``different_people`` detail reports, and the threshold it names."""
    found = re.search(r"distance to the nearest face: ([\d., ]+);.* is at most ([\d.]+)\)", detail)
    assert found, detail
    return [float(d) for d in found.group(1).split(", ")], float(found.group(2))


def total(client: TestClient) -> int:
    return int(client.get("/identities", headers=ADMIN).json()["total"])


def faces_of(client: TestClient, identity_id: object) -> int:
    return int(client.get(f"/identities/{identity_id}", headers=ADMIN).json()["faces"])


def at(*angles: float) -> np.ndarray:
    """Unit vectors at these angles in a plane: two at angle θ lie 2·sin(θ/2) apart."""
    return np.array([[np.cos(a), np.sin(a)] for a in angles], np.float32).reshape(-1, 2)


def test_a_face_linked_through_another_photo_is_the_same_person_but_two_groups_are_not() -> None:
    # 0.397 apart in a row, the ends 0.779 apart: a hard genuine pair (the ends) joined through the middle photo
    assert unlinked(at(0.0, 0.4, 0.8), at(), 0.45) == []
    assert unlinked(at(0.0), at(), 0.45) == []  # one photo: nothing to compare with
    # two photos of one person and one of another: the odd one out, 2·sin(1.6/2) from the nearest of the two
    assert unlinked(at(0.0, 0.1, 1.7), at(), 0.45) == [(2, pytest.approx(2 * np.sin(0.8), abs=1e-5))]
    # two pairs, each face with a close neighbour, and no person in the majority: every photo is named
    refused = unlinked(at(0.0, 0.1, 1.7, 1.8), at(), 0.45)
    assert [i for i, _ in refused] == [0, 1, 2, 3]
    assert [d for _, d in refused] == pytest.approx(2 * np.sin([0.85, 0.8, 0.8, 0.85]), abs=1e-5)
    # added to an identity: a close pair of new faces far from every stored face is refused, a chain to one is not
    assert [i for i, _ in unlinked(at(2.0, 2.1), at(0.0, 0.3), 0.45)] == [0, 1]
    assert unlinked(at(0.7, 1.1), at(0.0, 0.3), 0.45) == []


@pytest.mark.parametrize("check", [{}, {"same_person_check": "true"}, {"same_person_check": ""}])
def test_photos_of_different_people_are_refused_and_nothing_is_stored(
    client: TestClient, check: dict[str, str]
) -> None:
    response = client.post("/identities", data={"name": "Ada", **check}, files=photos(ADA, BOB), headers=ADMIN)
    assert response.status_code == 422, response.text  # an empty value, like none, keeps the check
    answer = response.json()
    assert answer["code"] == "different_people"
    assert answer["detail"].startswith("image 'p0.png', image 'p1.png': not the same person as the other photos")
    assert "same_person_check=false" in answer["detail"]
    distances, threshold = refusal_distances(answer["detail"])
    assert threshold == THRESHOLDS["verify_distance"]  # the embedder manifest's calibration decides
    assert len(distances) == 2 and min(distances) > threshold
    assert total(client) == 0


def test_the_photo_of_another_person_is_named_and_two_people_in_pairs_are_refused_too(client: TestClient) -> None:
    response = client.post("/identities", data={"name": "Ada"}, files=photos(ADA, ADA, BOB), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("image 'p2.png': not the same person as the other photos")
    response = client.post("/identities", data={"name": "Ada"}, files=photos(ADA, ADA, BOB, BOB), headers=ADMIN)
    assert response.status_code == 422, response.text  # every face has a close neighbour, yet two people
    assert response.json()["detail"].startswith("image 'p0.png', image 'p1.png', image 'p2.png', image 'p3.png': ")
    assert total(client) == 0


def test_photos_of_one_person_are_enrolled_and_the_check_can_be_skipped(client: TestClient) -> None:
    assert enrol(client, "Ada", ADA, ADA, ADA)["faces"] == 3
    unchecked = client.post("/identities", data={"name": "Mixed", **UNCHECKED}, files=photos(ADA, BOB), headers=ADMIN)
    assert unchecked.status_code == 201, unchecked.text
    assert unchecked.json()["faces"] == 2 and total(client) == 2


def test_faces_of_another_person_are_not_added_to_an_identity(client: TestClient) -> None:
    ada = enrol(client, "Ada", ADA)
    for people in ((BOB,), (BOB, BOB)):  # two photos of Bob are close to each other, not to Ada
        response = client.post(f"/identities/{ada['id']}/faces", files=photos(*people), headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "different_people"
        assert "not the same person as the enrolled person's faces" in response.json()["detail"]
        assert min(refusal_distances(response.json()["detail"])[0]) > THRESHOLDS["verify_distance"]
        assert faces_of(client, ada["id"]) == 1
    assert client.post(f"/identities/{ada['id']}/faces", files=photos(ADA), headers=ADMIN).status_code == 200
    skipped = client.post(f"/identities/{ada['id']}/faces", data=UNCHECKED, files=photos(BOB), headers=ADMIN)
    assert skipped.status_code == 200 and skipped.json()["faces"] == 3


@pytest.mark.parametrize("path", ["/identities", "/identities/{id}/faces"])
def test_a_same_person_check_that_is_not_a_boolean_is_a_422_naming_it(client: TestClient, path: str) -> None:
    ada = enrol(client, "Ada", ADA)
    url = path.format(id=ada["id"])
    for value in ("maybe", ["false", "true"]):  # not a boolean; sent twice
        data = {"same_person_check": value} | ({"name": "Bob"} if path == "/identities" else {})
        response = client.post(url, data=data, files=photos(BOB), headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith("same_person_check: ")
    assert total(client) == 1 and faces_of(client, ada["id"]) == 1


# Real faces: LFW photos, each with one face for the shipped detector; the people's own photos lie within 0.34 of
# each other, the two people 0.59 to 0.65 apart (measured with face-embedder v1, calibrated at 0.4142).
GERHARD = ("Gerhard_Schroeder_0005.jpg", "Gerhard_Schroeder_0017.jpg", "Gerhard_Schroeder_0025.jpg")
JENNIFER = ("Jennifer_Aniston_0001.jpg",)


@pytest.fixture
def real(shared_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The service with the shipped detector and embedder (the other roles faked: identity needs only these)."""
    settings = Settings(store=EMBEDDED_STORE.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN)  # type: ignore[call-arg]
    plans = [network_plan("detector", settings), *fake_plans()[1:], network_plan("embedder", settings)]
    with TestClient(create_app(settings, plans)) as client:
        yield wait_ready(client, timeout=300)


def lfw(shared_dir: Path, *names: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    root = shared_dir / "data" / "lfw-funneled" / "images"
    return [("image", (n, (root / n.rsplit("_", 1)[0] / n).read_bytes(), "image/jpeg")) for n in names]


@pytest.mark.shared
def test_real_photos_of_two_people_are_refused_by_the_calibrated_distance(real: TestClient, shared_dir: Path) -> None:
    files = lfw(shared_dir, GERHARD[0], *JENNIFER)
    response = real.post("/identities", data={"name": "Gerhard Schroeder"}, files=files, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "different_people"
    distances, threshold = refusal_distances(response.json()["detail"])
    assert threshold == pytest.approx(0.4142)  # face-embedder v1's verify_distance
    assert len(distances) == 2 and min(distances) > threshold
    assert "'Gerhard_Schroeder_0005.jpg'" in response.json()["detail"]
    assert total(real) == 0
    unchecked = real.post("/identities", data={"name": "Mixed", **UNCHECKED}, files=files, headers=ADMIN)
    assert unchecked.status_code == 201, unchecked.text


@pytest.mark.shared
def test_real_photos_of_one_person_are_enrolled_and_a_stranger_is_not_added(real: TestClient, shared_dir: Path) -> None:
    response = real.post(
        "/identities", data={"name": "Gerhard Schroeder"}, files=lfw(shared_dir, *GERHARD[:2]), headers=ADMIN
    )
    assert response.status_code == 201, response.text
    gerhard = response.json()["id"]
    stranger = real.post(f"/identities/{gerhard}/faces", files=lfw(shared_dir, *JENNIFER), headers=ADMIN)
    assert stranger.status_code == 422, stranger.text
    assert min(refusal_distances(stranger.json()["detail"])[0]) > 0.4142
    assert faces_of(real, gerhard) == 2
    more = real.post(f"/identities/{gerhard}/faces", files=lfw(shared_dir, GERHARD[2]), headers=ADMIN)
    assert more.status_code == 200 and more.json()["faces"] == 3


@pytest.mark.shared
def test_a_hard_real_pair_of_one_person_is_enrolled_when_a_third_photo_links_them(
    real: TestClient, shared_dir: Path
) -> None:
    """Two photos of Arnold Schwarzenegger 0.426 apart (a genuine pair past 0.4142), each within 0.38 of a third:
    alone they are refused, with the third they are one person."""
    hard = ("Arnold_Schwarzenegger_0008.jpg", "Arnold_Schwarzenegger_0009.jpg")
    alone = real.post("/identities", data={"name": "Arnold"}, files=lfw(shared_dir, *hard), headers=ADMIN)
    assert alone.status_code == 422, alone.text
    assert min(refusal_distances(alone.json()["detail"])[0]) == pytest.approx(0.426, abs=0.01)
    files = lfw(shared_dir, *hard, "Arnold_Schwarzenegger_0011.jpg")
    linked = real.post("/identities", data={"name": "Arnold"}, files=files, headers=ADMIN)
    assert linked.status_code == 201, linked.text
    assert linked.json()["faces"] == 3
