from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from app.errors import DeepCanvasError, PayloadTooLarge
from app.imaging import ImageLimits, decode_image, encode_image, load_rgb, reduce_by, to_rgb
from tests.support.bad_inputs import bad_images, good_images, jpeg_with_orientation
from tests.support.images import encode, face_like_photo

LIMITS = ImageLimits(max_pixels=40_000_000, min_side=16)


@pytest.mark.parametrize("kind", sorted(good_images()))
def test_every_supported_format_and_mode_decodes_to_rgb(kind: str) -> None:
    image = decode_image(good_images()[kind], LIMITS)
    assert image.mode == "RGB"
    assert min(image.size) >= 16


@pytest.mark.parametrize("kind", sorted(bad_images()))
def test_bad_uploads_raise_a_client_error_with_a_message(kind: str) -> None:
    data, statuses = bad_images()[kind]
    with pytest.raises(DeepCanvasError) as caught:
        decode_image(data, LIMITS, "image")
    assert caught.value.status in statuses
    assert caught.value.detail.startswith("image:")


def test_a_jpeg_whose_last_row_is_flat_is_checked_whole_and_kept() -> None:
    """A flat last row (a white background, a black border) is also where a JPEG missing its data ends: such a
    photo is checked against its whole data, and a sound one decodes as Pillow decodes it."""
    photo = np.asarray(Image.open(io.BytesIO(face_like_photo(200, 160))).convert("RGB")).copy()
    photo[-32:] = 255  # a white band, two whole 16-pixel block rows
    data = encode(Image.fromarray(photo), "JPEG")
    decoded = decode_image(data, LIMITS)
    assert np.array_equal(np.asarray(decoded), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert np.asarray(decoded)[-1].min() >= 250
    cut = data[: len(data) * 3 // 4] + b"\xff\xd9"  # the same photo missing its last quarter of data
    with pytest.raises(DeepCanvasError) as caught:
        decode_image(cut, LIMITS, "content")
    assert caught.value.status == 400
    assert caught.value.detail.startswith("content: truncated or corrupt JPEG image, part of its picture is missing")


def test_exif_orientation_is_applied() -> None:
    image = decode_image(jpeg_with_orientation(6), LIMITS)
    assert image.size == (40, 60)  # rotated 90°: the red left half is now on top
    top, bottom = image.getpixel((20, 5)), image.getpixel((20, 55))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 > bottom[0]


def test_transparent_pixels_become_white_not_black() -> None:
    image = decode_image(encode(Image.new("RGBA", (32, 32), (255, 0, 0, 0)), "PNG"), LIMITS)
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_images_are_scaled_not_clipped() -> None:
    array_image = Image.new("I;16", (32, 32), 65535)
    image = decode_image(encode(array_image, "PNG"), LIMITS)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    half = decode_image(encode(Image.new("I;16", (32, 32), 32768), "PNG"), LIMITS)
    assert half.getpixel((0, 0)) == (128, 128, 128)


def _old_scale(array: np.ndarray, top: float) -> np.ndarray:
    """What the service computed before scaling in bands: the whole array in float64."""
    return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_deep_images_scale_as_before_in_bands(mode: str) -> None:
    rng = np.random.default_rng(0)
    top = {"I;16": 65535, "I": 65535, "F": 3.5}[mode]
    values = rng.uniform(0, top, (600, 37))  # more rows than one band
    array = values.astype(np.float32) if mode == "F" else values.astype(np.uint16 if mode == "I;16" else np.int32)
    image = Image.fromarray(array, mode) if mode != "I;16" else Image.fromarray(array.astype(np.uint16))
    scaled = np.asarray(to_rgb(image))[..., 0]
    expected = _old_scale(np.asarray(image), float(array.max()) if mode == "F" else 65535.0)
    assert np.abs(scaled.astype(int) - expected.astype(int)).max() <= 1 and (scaled == expected).mean() > 0.999


def test_a_large_sixteen_bit_image_scales_in_a_few_bytes_a_pixel() -> None:
    """An 84 KB PNG of 6000x6000 16-bit pixels took 890 MB to decode when the scaling ran in float64 whole."""
    image = Image.fromarray(np.full((2000, 2000), 40000, dtype=np.uint16))
    tracemalloc.start()
    try:
        scaled = to_rgb(image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scaled.getpixel((0, 0)) == (156, 156, 156)
    assert peak < 6 * 2000 * 2000, f"{peak / 1e6:.0f} MB"  # the 16-bit copy, the 8-bit planes, one band


def test_the_pixel_limit_comes_from_settings() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(encode(Image.new("RGB", (200, 200)), "PNG"), ImageLimits(max_pixels=10_000, min_side=16))


def test_encode_image_gives_png_or_jpeg_with_their_content_types() -> None:
    image = Image.new("RGB", (20, 10), (1, 2, 3))
    png, png_type = encode_image(image, "png")
    jpeg, jpeg_type = encode_image(image, "jpeg")
    assert (png[:4], png_type) == (b"\x89PNG", "image/png")
    assert (jpeg[:2], jpeg_type) == (b"\xff\xd8", "image/jpeg")


def test_importing_ultralytics_does_not_change_how_uploads_are_decoded() -> None:
    import models.detector.network  # noqa: F401  (its import patches PIL.Image.open; ours must undo it)

    with pytest.raises(DeepCanvasError) as caught:
        decode_image(b"plain text, not an image" * 4, LIMITS)
    assert caught.value.status == 415


def test_a_jpeg_may_be_decoded_reduced_but_never_below_the_requested_side() -> None:
    from tests.support.images import face_like_photo

    data = face_like_photo(1600, 1200)
    reduced = decode_image(data, LIMITS, reduce_to=128)
    assert 128 <= min(reduced.size) < 1200 and reduced.width / reduced.height == pytest.approx(4 / 3, rel=0.02)
    assert decode_image(data, LIMITS).size == (1600, 1200)
    assert decode_image(face_like_photo(1600, 1200, "PNG"), LIMITS, reduce_to=128).size == (1600, 1200)


def test_a_jpeg_may_be_decoded_reduced_to_a_longer_side_and_both_bounds_hold() -> None:
    from tests.support.images import face_like_photo

    data = face_like_photo(1600, 1200)
    painted_at = decode_image(data, LIMITS, long_side=256)  # /stylize at max_side 256
    assert 256 <= max(painted_at.size) <= 400 and painted_at.width / painted_at.height == pytest.approx(4 / 3, rel=0.02)
    both = decode_image(data, LIMITS, reduce_to=128, long_side=600)  # the longer side's bound is the stricter
    assert max(both.size) >= 600 and min(both.size) >= 128
    assert decode_image(data, LIMITS, long_side=2000).size == (1600, 1200)  # never enlarged, never reduced below


@pytest.mark.parametrize(
    ("side", "reduce_to", "threaded"),
    [(200, None, False), (1200, None, True), (600, 160, False), (1200, 160, True)],
)
def test_small_uploads_decode_on_the_event_loop_and_larger_ones_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch, side: int, reduce_to: int | None, threaded: bool
) -> None:
    """The header decides: a small photo, or a small JPEG decoded at a reduced scale, stays inline.

    A large JPEG decoded to few pixels still reads every block (1200 px at 160: 300×300 out, 1.4 MP read): a thread.
    """
    import asyncio
    import io

    from fastapi import UploadFile

    from app import uploads

    hops: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(function: object, *args: object) -> object:
        hops.append(function)
        return await real_to_thread(function, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(uploads.asyncio, "to_thread", counting_to_thread)
    data = encode(Image.new("RGB", (side, side), (200, 30, 60)), "JPEG")
    upload = UploadFile(io.BytesIO(data), filename="photo.jpg")
    image = asyncio.run(uploads.read_image(upload, LIMITS, "image", reduce_to))
    assert image.mode == "RGB" and min(image.size) >= (reduce_to or side)
    assert bool(hops) is threaded


@pytest.mark.parametrize(("width", "height"), [(320, 240), (321, 241), (4032, 2263)])
def test_reduce_by_decodes_a_jpeg_at_the_dct_scale_asked_whatever_its_sides(width: int, height: int) -> None:
    image = Image.open(io.BytesIO(encode(Image.new("RGB", (width, height), (90, 120, 150)), "JPEG")))
    assert reduce_by(image, 2) == (width, height)
    assert load_rgb(image).size == (-(-width // 2), -(-height // 2))
    png = Image.open(io.BytesIO(encode(Image.new("RGB", (width, height)), "PNG")))
    assert reduce_by(png, 2) is None and load_rgb(png).size == (width, height)  # only a JPEG has DCT scales


@pytest.mark.parametrize(
    ("width", "height", "reduce_to", "long_side", "decoded"),
    [
        (1001, 600, 300, None, (501, 300)),  # a rounded-up request (501 of 1001) would decode it whole
        (1001, 600, 301, None, (1001, 600)),  # half of 600 falls short of 301
        (4033, 3025, 378, None, (505, 379)),  # an eighth keeps 379 >= 378
        (4033, 3025, None, 505, (505, 379)),  # the longer side's bound alone
        (4033, 3025, 100, 1100, (2017, 1513)),  # the stricter bound decides: a quarter would keep 1009
        (1001, 600, None, None, (1001, 600)),  # no bound: whole
    ],
)
def test_reduce_scale_takes_the_smallest_dct_scale_that_keeps_every_bound_on_odd_sides(
    width: int, height: int, reduce_to: int | None, long_side: int | None, decoded: tuple[int, int]
) -> None:
    data = encode(Image.new("RGB", (width, height), (90, 120, 150)), "JPEG")
    assert decode_image(data, LIMITS, reduce_to=reduce_to, long_side=long_side).size == decoded
