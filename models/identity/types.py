"""What the face embedder takes and returns, and its artifact's names; torch-free (the contract's types)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARCHITECTURE = "dlib-resnet29-face-v1"
RESNET_FILE = "resnet.safetensors"
LANDMARKS_FILE = "landmarks.safetensors"
ONNX_FILE = "resnet.onnx"
LICENSE_FILE = "LICENSE"
DESCRIPTOR_SIZE = 128


@dataclass(frozen=True)
class EmbedRequest:
    """One face: the whole photo and the detector's box for it."""

    image: np.ndarray  # (H, W, 3) uint8 RGB: the whole photo
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels, as /detect returns it
    descriptor: bool = True  # False: landmarks only (for /detect with landmarks=true in its form)


@dataclass(frozen=True)
class FaceEmbedding:
    landmarks: np.ndarray  # (5, 2) float32, (x, y) in the photo's pixels, dlib's 5-point order
    descriptor: np.ndarray | None  # (128,) float32, L2-normalised; None when not asked for


def warmup_request() -> EmbedRequest:
    """A small grey photo with a box in its middle: exercises landmarks, alignment and the network."""
    image = np.full((160, 160, 3), 128, np.uint8)
    return EmbedRequest(image=image, box=(40.0, 40.0, 120.0, 120.0))
