"""Identity on a large JPEG: faces read from the photo decoded smaller when they keep the chip's side there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.manager import SlotPlan
from app.settings import Settings
from models.identity.types import EmbedRequest, FaceEmbedding
from tests.support.app_client import wait_ready
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.identity_fakes import FakeEmbedder, add_fake_embedder
from tests.support.images import face_like_photo

TOKEN = "s3cret-token-0123456789abcdef"
LARGE = face_like_photo(1600, 1200)  # the fake detector (64 px input) reads it at the smallest DCT scale, 1/8
FACE = [400, 300, 800, 600]  # the fake detector's box: a quarter of each side, in the photo's pixels
CORNERS = [[400, 300], [800, 300], [600, 450], [400, 600], [800, 600]]  # FakeEmbedder's landmarks for FACE


class SeenEmbedder(FakeEmbedder):
    """Records the size of every photo it reads faces from."""

    seen: ClassVar[list[tuple[int, int]]] = []

    def predict(self, batch: list[EmbedRequest]) -> list[FaceEmbedding]:
        SeenEmbedder.seen += [(r.image.shape[1], r.image.shape[0]) for r in batch]
        return super().predict(batch)


@pytest.fixture(params=[16, 64], ids=["chips-fit", "chips-too-small"])
def client_and_chip(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    store = make_fake_store(tmp_path / "store")
    add_fake_embedder(store, chip=request.param)
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN)  # type: ignore[call-arg]
    plans = [*fake_plans(), SlotPlan("embedder", "embedder", lambda f, m, d: SeenEmbedder(m))]
    SeenEmbedder.seen = []
    with TestClient(create_app(settings, plans)) as client:
        yield wait_ready(client), request.param


def _decodes(response: object) -> int:
    timing = response.headers["server-timing"]  # type: ignore[attr-defined]
    return sum(step.startswith("decode") for step in timing.split(", "))


def _expected(chip: int) -> tuple[tuple[int, int], int]:
    """The photo the embedder reads and the decodes per photo: at 1/8 the face is 50x37 px, enough for 16 only."""
    return ((200, 150), 1) if chip == 16 else ((1600, 1200), 2)


def test_landmarks_are_in_the_photos_pixels_whichever_decode_the_embedder_read(
    client_and_chip: tuple[TestClient, int],
) -> None:
    client, chip = client_and_chip
    response = client.post("/detect", files={"image": ("p.jpg", LARGE, "image/jpeg")}, data={"landmarks": "true"})
    assert response.status_code == 200, response.text
    [face] = response.json()["detections"]
    assert face["box"] == pytest.approx(FACE, abs=8)
    assert np.allclose(face["landmarks"], CORNERS, atol=8)
    size, decodes = _expected(chip)
    assert SeenEmbedder.seen == [size] and _decodes(response) == decodes


def test_verify_identify_and_enrol_read_faces_from_the_smaller_decode_when_it_is_enough(
    client_and_chip: tuple[TestClient, int],
) -> None:
    client, chip = client_and_chip
    size, decodes = _expected(chip)
    photo = ("p.jpg", LARGE, "image/jpeg")
    verified = client.post("/verify", files={"image_a": photo, "image_b": photo})
    assert verified.status_code == 200, verified.text
    assert verified.json()["same"] is True and verified.json()["a"]["box"] == pytest.approx(FACE, abs=8)
    assert _decodes(verified) == 2 * decodes
    enrolled = client.post(
        "/identities", data={"name": "Ada"}, files={"image": photo}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert enrolled.status_code == 201, enrolled.text
    identified = client.post("/identify", files={"image": photo})
    assert identified.status_code == 200, identified.text
    [face] = identified.json()["faces"]
    assert face["box"] == pytest.approx(FACE, abs=8) and face["identity"]["name"] == "Ada"
    assert SeenEmbedder.seen == [size] * 4 and _decodes(identified) == decodes
