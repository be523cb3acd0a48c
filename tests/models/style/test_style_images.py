"""Sizing and conversion of images for the style networks."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.style.images import fit_size, image_to_tensor, resize_for_network, tensor_to_image

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
