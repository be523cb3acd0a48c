"""Letterbox pre-processing and its inverse for boxes (numpy, shared by the torch and ONNX predictors)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from models.detector.boxes import PAD_VALUE, Letterbox, canvas_shape, letterbox, unletterbox
from models.detector.pipeline import detect
from models.detector.types import DetectRequest

SIZE = 128
SHAPES = {"wide": (400, 150), "tall": (90, 300), "square": (100, 100)}
DRAWN_BOXES = {"wide": (37, 20, 301, 111), "tall": (10, 51, 77, 260), "square": (13, 40, 61, 93)}


def content_extent(canvas: np.ndarray) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 of the canvas pixels that are not letterbox padding."""
    content = np.abs(canvas - PAD_VALUE).max(axis=0) > 1e-6  # (S, S)
    return bright_extent(content.astype(np.float32))


def bright_extent(gray: np.ndarray) -> tuple[int, int, int, int]:
    """x1, y1, x2, y2 (exclusive) of the (S, S) pixels above one half."""
    ys, xs = np.nonzero(gray > 0.5)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_letterbox_makes_a_unit_range_square_with_the_longest_side_filled(shape: tuple[int, int]) -> None:
    canvas, info = letterbox(Image.effect_noise(shape, 64).convert("RGB"), SIZE)
    assert canvas.shape == (3, SIZE, SIZE) and canvas.dtype == np.float32
    assert canvas.min() >= 0 and canvas.max() <= 1
    assert (info.width, info.height) == shape
    assert info.scale == pytest.approx(SIZE / max(shape))


@pytest.mark.parametrize("shape", [*SHAPES.values(), (16, 2000)], ids=[*SHAPES.keys(), "strip"])
def test_letterbox_keeps_the_aspect_ratio_and_centres_the_image_on_grey(shape: tuple[int, int]) -> None:
    width, height = shape
    canvas, _ = letterbox(Image.new("RGB", shape, (0, 0, 0)), SIZE)
    x1, y1, x2, y2 = content_extent(canvas)
    assert max(x2 - x1, y2 - y1) == SIZE
    # Within one pixel of rounding on the short side, the content has the image's aspect ratio.
    assert abs((x2 - x1) * height - (y2 - y1) * width) <= max(width, height)
    assert abs(x1 - (SIZE - x2)) <= 1 and abs(y1 - (SIZE - y2)) <= 1
    padding = np.ones((SIZE, SIZE), dtype=bool)
    padding[y1:y2, x1:x2] = False
    assert np.all(canvas[:, padding] == np.float32(PAD_VALUE))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_letterbox_turns_any_image_mode_into_three_channels(mode: str) -> None:
    canvas, _ = letterbox(Image.new(mode, (40, 20)), 64)
    assert canvas.shape == (3, 64, 64)


def test_letterbox_canvas_holds_the_resized_pixels_scaled_to_the_unit_range() -> None:
    image = Image.effect_noise((50, 25), 64).convert("RGB")
    canvas, info = letterbox(image, 100)
    resized = np.asarray(image.resize((100, 50), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    top = int(info.pad_y)
    np.testing.assert_array_equal(canvas[:, top : top + 50, :], resized.transpose(2, 0, 1))


@pytest.mark.parametrize("name", SHAPES.keys())
def test_a_drawn_box_survives_the_letterbox_and_maps_back_within_a_pixel(
    name: str, image_with_rectangle: Callable[..., Image.Image]
) -> None:
    drawn = DRAWN_BOXES[name]
    canvas, info = letterbox(image_with_rectangle(*SHAPES[name], drawn), SIZE)
    measured = np.array(bright_extent(canvas.mean(axis=0)), dtype=np.float32)
    restored = unletterbox(measured, info)
    # The box is measured on the canvas, so one canvas pixel (1 / scale image pixels) is the resolution.
    np.testing.assert_allclose(restored, np.array(drawn, dtype=np.float32), atol=max(1.0, 1 / info.scale))


@pytest.mark.parametrize("name", SHAPES.keys())
def test_unletterbox_inverts_the_letterbox_placement_exactly(name: str) -> None:
    _, info = letterbox(Image.new("RGB", SHAPES[name]), SIZE)
    boxes = np.array([DRAWN_BOXES[name], (0, 0, *SHAPES[name])], dtype=np.float32)
    on_canvas = boxes * info.scale + np.array([info.pad_x, info.pad_y, info.pad_x, info.pad_y], dtype=np.float32)
    restored = unletterbox(on_canvas, info)
    assert restored.dtype == np.float32
    np.testing.assert_allclose(restored, boxes, atol=1e-3)


def test_unletterbox_clips_boxes_to_the_original_image() -> None:
    info = Letterbox(scale=0.5, pad_x=0.0, pad_y=16.0, width=128, height=64)
    boxes = np.array([[-10.0, 0.0, 70.0, 64.0], [30.0, 40.0, 50.0, 60.0]], dtype=np.float32)
    restored = unletterbox(boxes, info)
    np.testing.assert_array_equal(restored[0], [0.0, 0.0, 128.0, 64.0])
    np.testing.assert_array_equal(restored[1], [60.0, 48.0, 100.0, 64.0])


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((400, 150), (64, 128)),
        ((90, 300), (128, 64)),
        ((100, 100), (128, 128)),
        ((640, 480), (96, 128)),
        ((16, 2000), (128, 32)),
    ],
    ids=["wide", "tall", "square", "4:3", "strip"],
)
def test_with_a_stride_the_canvas_is_the_smallest_aligned_rectangle_around_the_image(
    shape: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert canvas_shape(*shape, SIZE, 32) == expected
    assert canvas_shape(*shape, SIZE) == (SIZE, SIZE)
    canvas, info = letterbox(Image.new("RGB", shape, (0, 0, 0)), SIZE, 32)
    assert canvas.shape == (3, *expected)
    x1, y1, x2, y2 = content_extent(canvas)
    assert max(x2 - x1, y2 - y1) == SIZE  # the same scale as on the square
    assert abs(x1 - (expected[1] - x2)) <= 1 and abs(y1 - (expected[0] - y2)) <= 1  # centred
    boxes = np.array([[0, 0, *shape]], dtype=np.float32) * info.scale + [info.pad_x, info.pad_y] * 2
    np.testing.assert_allclose(unletterbox(boxes.astype(np.float32), info), [[0, 0, *shape]], atol=1e-3)


def test_requests_run_batched_per_canvas_shape_and_come_back_in_order() -> None:
    shapes_seen: list[tuple[int, ...]] = []

    def forward(images: np.ndarray) -> np.ndarray:
        shapes_seen.append(images.shape)
        batch, _, height, width = images.shape
        # one confident box per image, 20 px square at the canvas centre: (B, 4 + nc, A) with A = 1
        return np.tile(np.array([width / 2, height / 2, 20, 20, 0.9], np.float32)[None, :, None], (batch, 1, 1))

    sizes = [(400, 300), (100, 100), (800, 600), (300, 400)]
    batch = [DetectRequest(Image.new("RGB", size), conf=0.5, iou=0.5, max_det=5, imgsz=128) for size in sizes]
    results = detect(batch, 32, ["face"], forward)
    assert sorted(shapes_seen) == [(1, 3, 128, 96), (1, 3, 128, 128), (2, 3, 96, 128)]
    for (width, height), (found,) in zip(sizes, results, strict=True):
        centre = ((found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2)
        assert centre == pytest.approx((width / 2, height / 2), abs=1.0)  # mapped back to its own image


def test_detections_smaller_than_the_requests_min_size_are_dropped() -> None:
    from PIL import Image

    from models.detector.pipeline import to_detections
    from models.detector.types import DetectRequest

    # two anchors on an unscaled canvas, as (1, 4 + 1, A) cx, cy, w, h, score: a 40×30 and a 10×8 box
    pred = np.array([[[100.0, 50.0], [100.0, 50.0], [40.0, 10.0], [30.0, 8.0], [0.9, 0.8]]], dtype=np.float32)
    placement = Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0, width=200, height=200)
    image = Image.new("RGB", (200, 200))

    def sides(min_size: float) -> list[tuple[float, float]]:
        request = DetectRequest(image=image, conf=0.25, iou=0.45, max_det=10, imgsz=200, min_size=min_size)
        found = to_detections(pred, request, placement, ["face"])
        return [(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in found]

    assert sorted(sides(0.0)) == [(10.0, 8.0), (40.0, 30.0)]
    assert sorted(sides(8.0)) == [(10.0, 8.0), (40.0, 30.0)]  # the shorter side at the floor is kept
    assert sides(8.5) == [(40.0, 30.0)] and sides(31.0) == []


def test_a_photo_smaller_than_imgsz_is_not_upscaled_past_its_own_side() -> None:
    from PIL import Image

    from models.detector.pipeline import group_by_canvas
    from models.detector.types import DetectRequest

    def groups(width: int, height: int) -> list[tuple[int, int, int]]:
        request = DetectRequest(image=Image.new("RGB", (width, height)), conf=0.25, iou=0.45, max_det=10, imgsz=640)
        return list(group_by_canvas([request], 32))

    assert groups(512, 512) == [(512, 512, 512)]  # a 512 px portrait runs at 512, as it is
    assert groups(500, 375) == [(512, 384, 512)]  # its own side rounded up to the stride
    assert groups(1280, 720) == [(640, 384, 640)]  # larger photos still shrink to imgsz
