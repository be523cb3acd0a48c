"""Sizing and conversion of images for the style networks."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.style.images import fit_size, image_to_tensor, resize_for_network, tensor_to_image
from models.style.sizing import served_size, to_served_size

SIZES = [(16, 16), (17, 300), (100, 61), (61, 100), (640, 480), (4000, 3000), (1023, 1), (2000, 16)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("max_side", [16, 64, 100, 512])
def test_fit_size_bounds_the_longer_side_and_makes_sides_multiples_of_8(size: tuple[int, int], max_side: int) -> None:
    width, height = fit_size(*size, max_side)
    assert max(width, height) <= max_side
    assert width % 8 == 0 and height % 8 == 0
    assert min(width, height) >= 16


@pytest.mark.parametrize("size", [(100, 61), (61, 100), (640, 480), (4000, 3000), (333, 500)])
def test_fit_size_keeps_the_aspect_ratio_moving_each_side_at_most_4_px(size: tuple[int, int]) -> None:
    width, height = fit_size(*size, 256)
    scale = min(1.0, 256 / max(size))
    assert abs(width - size[0] * scale) <= 4 and abs(height - size[1] * scale) <= 4


def test_fit_size_never_enlarges_a_small_image() -> None:
    assert fit_size(40, 24, 1024) == (40, 24)


@pytest.mark.parametrize(
    "size, max_side, served",
    [
        ((300, 200), 100, (100, 67)),  # the network paints 96x64: a user asked for 100
        ((4000, 300), 64, (64, 5)),  # the network's short side is clamped to 16: the photo's proportions come back
        ((20, 5000), 1024, (4, 1024)),
        ((90, 60), 1024, (90, 60)),  # never enlarged
        ((10, 10), 32, (10, 10)),
    ],
)
def test_the_served_size_keeps_the_photos_proportions_and_reaches_max_side(
    size: tuple[int, int], max_side: int, served: tuple[int, int]
) -> None:
    assert served_size(*size, max_side) == served
    painted = Image.new("RGB", fit_size(*size, max_side), (200, 30, 30))
    assert to_served_size(painted, size, max_side).size == served


def test_a_painting_already_at_the_served_size_is_returned_as_it_is() -> None:
    painted = Image.new("RGB", (64, 48))
    assert to_served_size(painted, (640, 480), 64) is painted


def test_fit_size_clamps_to_a_larger_minimum_when_asked() -> None:
    assert fit_size(16, 16, 512, min_side=32) == (32, 32)
    assert fit_size(600, 40, 512, min_side=32) == (512, 32)


def test_resize_for_network_returns_rgb_even_for_other_modes() -> None:
    resized = resize_for_network(Image.new("RGBA", (90, 50), (10, 20, 30, 40)), 64)
    assert resized.mode == "RGB" and resized.size == fit_size(90, 50, 64)


def test_tensor_round_trip_preserves_pixels_and_clamps_out_of_range_values() -> None:
    image = Image.frombytes("RGB", (4, 2), bytes(range(0, 240, 10)))
    tensor = image_to_tensor(image, torch.device("cpu"))
    assert tensor.shape == (1, 3, 2, 4) and float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert tensor_to_image(tensor).tobytes() == image.tobytes()
    clamped = tensor_to_image(torch.tensor([[[-1.0]], [[0.5]], [[2.0]]]))
    assert clamped.getpixel((0, 0)) == (0, 128, 255)
