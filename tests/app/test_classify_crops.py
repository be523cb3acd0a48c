"""/classify on a large JPEG: detection on the photo decoded smaller, crops from it when they are large enough."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.services import face_crops
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.images import face_like_photo

LARGE = face_like_photo(1600, 1200)  # the fake detector (64 px input) reads it at the smallest DCT scale, 1/8


@pytest.fixture(params=[16, 64], ids=["crops-fit", "crops-too-small"])
def client_and_input(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, int]]:
    with fake_app_client(tmp_path, classifier_input=request.param) as client:
        yield wait_ready(client), request.param


def test_the_whole_decode_happens_only_when_a_face_is_too_small_in_the_smaller_one(
    client_and_input: tuple[TestClient, int],
) -> None:
    client, classifier_input = client_and_input
    response = client.post("/classify", files={"image": ("p.jpg", LARGE, "image/jpeg")})
    assert response.status_code == 200, response.text
    [face] = response.json()["faces"]
    assert face["box"] == pytest.approx([400, 300, 800, 600], abs=8)  # in the photo's own pixels either way
    decodes = [step for step in response.headers["server-timing"].split(", ") if step.startswith("decode")]
    # decoded at 1/8 (200x150): the face's crop is about 60x45 there, enough for a 16 px input, not for 64
    assert len(decodes) == (1 if classifier_input == 16 else 2)


def _painted(size: tuple[int, int]) -> Image.Image:
    photo = Image.new("RGB", size, (30, 30, 30))
    draw = ImageDraw.Draw(photo)
    draw.rectangle((400, 300, 799, 599), fill=(220, 120, 40))  # a "face"
    draw.rectangle((1200, 100, 1239, 139), fill=(40, 160, 220))  # a small one
    return photo


def test_crops_from_the_smaller_photo_cover_the_same_region() -> None:
    photo = _painted((1600, 1200))
    smaller = photo.reduce(4)
    calls: list[int] = []

    async def whole() -> Image.Image:
        calls.append(1)
        return photo

    [crop] = asyncio.run(face_crops(smaller, photo.size, [(400, 300, 800, 600)], 64, whole))
    assert crop.size == (100, 75) and calls == []
    assert crop.getpixel((50, 37)) == (220, 120, 40) and crop.getpixel((0, 0)) == (220, 120, 40)
    # with a face too small for 64 px there (10x10 at 1/4), every crop comes from the whole photo, decoded once
    crops = asyncio.run(face_crops(smaller, photo.size, [(400, 300, 800, 600), (1200, 100, 1240, 140)], 64, whole))
    assert [c.size for c in crops] == [(400, 300), (40, 40)] and calls == [1]
    assert crops[1].getpixel((20, 20)) == (40, 160, 220)


def test_a_photo_decoded_whole_is_cropped_as_it_is() -> None:
    photo = _painted((1600, 1200))

    async def whole() -> Image.Image:
        raise AssertionError("decoded whole already")

    [crop] = asyncio.run(face_crops(photo, None, [(400, 300, 800, 600)], 64, whole))
    assert crop.size == (400, 300)
