"""Image transforms shared by training, evaluation and the predictor, so all three see the same pixels.

Every transform maps a ``(3, H, W)`` uint8 tensor to a normalised ``(3, S, S)`` float tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Detector boxes vary in size and position around a face, and the HTTP layer adds a margin: a zoom of
# 0.75 is a box 1/0.75 = 1.33x the training crop (loose), 1.2 a box cropping into the face (tight).
ZOOM_RANGE = (0.75, 1.2)
SHIFT = 0.06  # largest box-centre shift, as a fraction of the crop side
DEGREES = 8.0


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


def train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """Detector-like crop, horizontal flip, colour jitter, and occasional grayscale or blur."""
    return v2.Compose(
        [
            detector_like_crop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02)], p=0.8),
            v2.RandomGrayscale(p=0.05),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.15),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
