"""The embedder's request and result, as the identity contract fixes them (shared by service and model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmbedRequest:
    image: np.ndarray  # (H, W, 3) uint8 RGB: the whole photo
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels, as /detect returns it
    descriptor: bool = True  # False: landmarks only (for /detect?landmarks=true)


@dataclass(frozen=True)
class FaceEmbedding:
    landmarks: np.ndarray  # (5, 2) float32, (x, y) in the photo's pixels, dlib's 5-point order
    descriptor: np.ndarray | None  # (128,) float32, L2-normalised; None when not asked for
