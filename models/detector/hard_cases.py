"""Harder composites: occluded faces, low light, blurred images, and crowds of small faces.

Real photos hold faces behind hands, hats, microphones and other heads, in dim rooms, out of focus, and
in crowds where a face is a dozen pixels wide: the cases the synthetic-only v1 missed. Each degradation
is drawn from the composite's own generator, so an image stays reproducible from ``(seed, index)``;
a face's label never changes (an occluded face is still a face to find).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


def occlude_face(canvas: Image.Image, box: Box, rng: np.random.Generator) -> None:
    """Cover a third to a half of the face from one side with a flat shape (a hand, a hat, a shoulder)."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    share = rng.uniform(0.3, 0.5)
    side = int(rng.integers(4))  # 0 bottom, 1 top, 2 left, 3 right
    if side == 0:
        region = (x1 - 0.1 * width, y2 - share * height, x2 + 0.1 * width, y2 + 0.2 * height)
    elif side == 1:
        region = (x1 - 0.1 * width, y1 - 0.2 * height, x2 + 0.1 * width, y1 + share * height)
    elif side == 2:
        region = (x1 - 0.2 * width, y1 - 0.1 * height, x1 + share * width, y2 + 0.1 * height)
    else:
        region = (x2 - share * width, y1 - 0.1 * height, x2 + 0.2 * width, y2 + 0.1 * height)
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    draw = ImageDraw.Draw(canvas)
    (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(region, fill=fill)


def darken(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dim exposure: gamma above one, gain below one, and Gaussian sensor noise that dim photos carry."""
    pixels = np.asarray(image, dtype=np.float32) / 255  # (H, W, 3)
    pixels = rng.uniform(0.2, 0.6) * pixels ** rng.uniform(1.2, 2.2)
    pixels += rng.normal(0, rng.uniform(0.005, 0.03), size=pixels.shape).astype(np.float32)
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def blur_everything(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Defocus: a Gaussian or a box blur of 0.6-2 px at a 640 px side, scaled with the image."""
    radius = rng.uniform(0.6, 2.0) * image.width / 640
    blur = ImageFilter.GaussianBlur(radius) if rng.random() < 0.5 else ImageFilter.BoxBlur(radius)
    return image.filter(blur)


def degrade_image(
    image: Image.Image, rng: np.random.Generator, blur_probability: float, low_light_probability: float
) -> Image.Image:
    """The whole-image degradations, each drawn at random; with both probabilities 0 the image is unchanged."""
    if blur_probability and rng.random() < blur_probability:
        image = blur_everything(image, rng)
    if low_light_probability and rng.random() < low_light_probability:
        image = darken(image, rng)
    return image
