"""Sizing of images for the style networks, and PIL <-> (1, 3, H, W) float32 arrays in [0, 1]; torch-free.

Shared by the torch and the ONNX predictors, so both see the same pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The encoder pools three times (÷8) and the decoder upsamples three times (×8): sides that are
# multiples of 8 come back at exactly the size they went in.
SIDE_MULTIPLE = 8
# Reflection padding needs at least 2 pixels at relu4_1, i.e. 16 at the input.
MIN_SIDE = 16


def fit_size(width: int, height: int, max_side: int, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """(width, height) the network runs at: longer side <= ``max_side``, aspect kept, multiples of 8, >= ``min_side``.

    Images are shrunk, never enlarged; rounding to a multiple of 8 moves each side by at most 4 px
    (more only for extreme aspect ratios, which are clamped to ``min_side`` on the short side). The painting
    is then brought to ``served_size``, so neither the rounding nor the clamp shows in what a user gets.
    """
    assert width > 0 and height > 0, f"empty image {width}x{height}"
    assert max_side >= min_side, f"max_side must be >= {min_side}, got {max_side}"
    scale = min(1.0, max_side / max(width, height))
    ceiling = max_side // SIDE_MULTIPLE * SIDE_MULTIPLE

    def fit(side: int) -> int:
        rounded = round(side * scale / SIDE_MULTIPLE) * SIDE_MULTIPLE
        return min(max(rounded, min_side), ceiling)

    return fit(width), fit(height)


def served_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The painting's size as served: the photo's aspect, its longer side ``max_side`` (never enlarged), >= 1 px."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_for_network(image: Image.Image, max_side: int, min_side: int = MIN_SIDE) -> Image.Image:
    """RGB copy of ``image`` resized to :func:`fit_size`."""
    rgb = image.convert("RGB")
    size = fit_size(rgb.width, rgb.height, max_side, min_side)
    if size == rgb.size:
        return rgb
    return rgb.resize(size, Image.Resampling.LANCZOS)


def to_served_size(painting: Image.Image, photo_size: tuple[int, int], max_side: int) -> Image.Image:
    """``painting`` (at the network's size) resized to the photo's ``served_size``, when the two differ.

    The network's sides are multiples of 8 and at least its minimum: a 100 px request painted at 96 px, or a
    4000x300 photo at 64x16, comes back at 100 px, or at 64x5, with the photo's own proportions. (``/stylize``
    refuses a painting thinner than the service's least image side before it is painted: app.routers.stylize.)
    """
    size = served_size(*photo_size, max_side)
    if painting.size == size:
        return painting
    return painting.resize(size, Image.Resampling.LANCZOS)


def image_to_array(image: Image.Image) -> np.ndarray:
    """An RGB image as a float32 array (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return array.transpose(2, 0, 1)[None]  # (1, 3, H, W)


def array_to_image(array: np.ndarray) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) float array, clamped to [0, 1], as an RGB image."""
    image = np.clip(array.squeeze(0) if array.ndim == 4 else array, 0.0, 1.0)  # (3, H, W)
    assert image.ndim == 3 and image.shape[0] == 3, f"expected one RGB image, got {array.shape}"
    pixels = np.round(image.transpose(1, 2, 0) * 255.0).astype(np.uint8)  # (H, W, 3)
    return Image.fromarray(pixels)  # (H, W, 3) uint8 is RGB
