"""The client sends a PIL image of any mode as a PNG the service reads as it would read the image itself."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.imaging import to_rgb
from deepcanvas.calls import image_file
from tests.support.images import face_like_photo

PHOTO = Image.open(io.BytesIO(face_like_photo(64, 48))).convert("RGB")
RNG = np.random.default_rng(0)


def _in_mode(mode: str) -> Image.Image:
    if mode == "I":  # 16-bit values in a 32-bit image, as a TIFF scan opens
        return Image.fromarray((np.asarray(PHOTO.convert("L"), dtype=np.int32) * 257), "I")
    if mode == "F":
        return Image.fromarray(np.asarray(PHOTO.convert("L"), dtype=np.float32) / 255.0 * 3.5, "F")
    return PHOTO.convert(mode)


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "I", "F", "RGBA", "L", "P"])
def test_every_mode_is_sent_as_a_png_that_decodes_as_the_image_itself_would(mode: str) -> None:
    image = _in_mode(mode)
    name, data = image_file(image)
    assert name == "image.png"
    sent = Image.open(io.BytesIO(data))
    assert sent.format == "PNG" and sent.size == image.size
    difference = np.abs(np.asarray(to_rgb(sent), dtype=int) - np.asarray(to_rgb(image.copy()), dtype=int))
    assert difference.max() <= 1  # what the service decodes: the same pixels, to rounding


def test_a_pil_image_is_sent_upright_by_its_exif_orientation_and_the_callers_image_is_kept() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; show the pixels rotated 90° clockwise
    buffer = io.BytesIO()
    PHOTO.save(buffer, format="JPEG", exif=exif.tobytes())
    opened = Image.open(io.BytesIO(buffer.getvalue()))
    _, data = image_file(opened)
    sent = Image.open(io.BytesIO(data))
    assert sent.size == (PHOTO.height, PHOTO.width)  # as the service would see the JPEG itself
    assert opened.size == PHOTO.size and opened.getexif()[0x0112] == 6  # the caller's image untouched
