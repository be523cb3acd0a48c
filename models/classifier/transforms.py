"""Image transforms shared by training, evaluation and the predictor, so all three see the same pixels.

Every transform maps a ``(3, H, W)`` uint8 tensor to a normalised ``(3, S, S)`` float tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from models.classifier.pipeline import expand_box

Transform = Callable[[torch.Tensor], torch.Tensor]
BoxCrop = Callable[[Image.Image, tuple[float, ...]], Image.Image]  # (image, face box) -> face crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Detector boxes vary in size and position around a face, and the HTTP layer adds a margin: a zoom of
# 0.75 is a box 1/0.75 = 1.33x the training crop (loose), 1.2 a box cropping into the face (tight).
ZOOM_RANGE = (0.75, 1.2)
SHIFT = 0.06  # largest box-centre shift, as a fraction of the crop side
DEGREES = 8.0
# Jitter of a detector box before the served margin is added: its size, its centre (fraction of the box
# side) and its aspect ratio vary between detectors and between frames of one face.
BOX_SCALE = (0.85, 1.25)
BOX_SHIFT = 0.08
BOX_ASPECT = (0.85, 1.18)


def image_to_uint8(image: Image.Image) -> torch.Tensor:
    """A PIL image (any mode) as a ``(3, H, W)`` uint8 RGB tensor."""
    return F.pil_to_tensor(image.convert("RGB"))


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Resize the whole crop to ``size`` x ``size`` (antialiased) and normalise."""
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def detector_like_crop(size: int) -> Transform:
    """Zoom, shift and rotate a face crop the way detector boxes vary.

    Reflection padding first, so a loose box shows plausible surroundings rather than black borders.
    """
    pad = size // 4
    padded = size + 2 * pad
    shift = SHIFT * size / padded  # RandomAffine translates relative to the padded side
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.Pad(pad, padding_mode="reflect"),
            v2.RandomAffine(
                degrees=DEGREES,
                translate=(shift, shift),
                scale=ZOOM_RANGE,
                interpolation=v2.InterpolationMode.BILINEAR,
            ),
            v2.CenterCrop(size),
        ]
    )


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))  # torch's generator: per-epoch seeds reproduce runs


def jitter_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A face box moved, resized and stretched the way another detector (or frame) would draw it."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    cx, cy = (
        (x1 + x2) / 2 + _uniform(-BOX_SHIFT, BOX_SHIFT) * width,
        (y1 + y2) / 2 + _uniform(-BOX_SHIFT, BOX_SHIFT) * height,
    )
    scale, aspect = _uniform(*BOX_SCALE), math.sqrt(_uniform(*BOX_ASPECT))
    half_w, half_h = width * scale * aspect / 2, height * scale / aspect / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def jittered_crop(margin: float) -> BoxCrop:
    """Crop a jittered face box grown by the served ``margin``, clipped to the image as ``/classify`` clips."""

    def crop(image: Image.Image, box: tuple[float, ...]) -> Image.Image:
        return image.crop(expand_box(jitter_box(box), margin, image.width, image.height))

    return crop


def appearance(mean: Sequence[float], std: Sequence[float]) -> list[Transform]:
    """Flip, colour jitter, grayscale, blur and JPEG re-encoding (uploads are often small, old or compressed)."""
    return [
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02)], p=0.8),
        v2.RandomGrayscale(p=0.1),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        v2.RandomApply([v2.JPEG((30, 95))], p=0.3),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]


def train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Detector-like crop of a whole face crop, then the appearance augmentations."""
    return v2.Compose([detector_like_crop(size), *appearance(mean, std)])


def boxed_train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """For crops already cut by a jittered box: a small rotation, resize, then the appearance augmentations."""
    rotate = v2.RandomRotation(DEGREES, interpolation=v2.InterpolationMode.BILINEAR)
    return v2.Compose([v2.Resize((size, size), antialias=True), rotate, *appearance(mean, std)])
