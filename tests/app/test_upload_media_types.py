"""Upload routes take multipart/form-data; other bodies get an answer that says what to send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.app_client import fake_app_client, wait_ready
from tests.support.images import face_like_photo

PHOTO = face_like_photo(160, 120)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path) as client:
        yield wait_ready(client)


@pytest.mark.parametrize("path, field", [("/detect", "image"), ("/classify", "image"), ("/stylize", "content")])
def test_a_json_body_to_an_upload_route_is_an_unsupported_media_type(client: TestClient, path: str, field: str) -> None:
    response = client.post(path, json={field: "photo.jpg"})
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == f"send multipart/form-data with the photo in the {field} field"


def test_a_raw_jpeg_body_is_an_unsupported_media_type(client: TestClient) -> None:
    response = client.post("/detect", content=PHOTO, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 415, response.text
    assert "multipart/form-data" in response.json()["detail"]


def test_a_url_encoded_form_is_an_unsupported_media_type(client: TestClient) -> None:
    response = client.post("/detect", data={"image": "photo.jpg"})
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == "send multipart/form-data with the photo in the image field"


def test_an_image_sent_as_a_text_field_is_asked_for_as_a_file(client: TestClient) -> None:
    response = client.post("/detect", files={"image": (None, "photo.jpg")})  # a multipart part without a filename
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "image: must be a file upload (multipart/form-data)"


def test_a_multipart_form_without_the_photo_still_names_the_missing_field(client: TestClient) -> None:
    response = client.post("/detect", files={"other": ("p.jpg", PHOTO)})
    assert response.status_code == 422 and response.json()["detail"] == "image: Field required"


def test_a_bad_parameter_beside_a_photo_is_still_a_422(client: TestClient) -> None:
    response = client.post("/detect", files={"image": ("p.jpg", PHOTO)}, data={"conf": "2"})
    assert response.status_code == 422 and response.json()["detail"].startswith("conf:")
