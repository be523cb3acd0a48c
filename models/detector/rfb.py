"""The Ultra-Light RFB face detector's contract (Linzaer, MIT): one home for its input and its outputs.

Input ``input`` (1, 3, H, W): the RGB photo stretched to W×H (its authors' resize; the aspect is not
kept), ``(pixel - 127) / 128``. Outputs ``scores`` (1, N, 2), column 1 the face probability (a softmax
over background and face), and ``boxes`` (1, N, 4): x1, y1, x2, y2 as fractions of the width and height,
the priors already decoded inside the ONNX graph. NMS is the caller's. The teacher that labels training
photos and the served ``RfbFaceDetector`` both run it through ``rfb_forward``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

ARCHITECTURE = "ultralight-rfb"
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0
INPUT_NAME, SCORES_NAME, BOXES_NAME = "input", "scores", "boxes"

# (1, 3, H, W) float32 input -> {"scores": (1, N, 2), "boxes": (1, N, 4)}
RfbRun = Callable[[np.ndarray], dict[str, np.ndarray]]


def rfb_input(image: Image.Image, width: int, height: int) -> np.ndarray:
    """The photo as the network takes it: (1, 3, height, width) float32, ``(pixel - 127) / 128``."""
    resized = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
    return ((resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_SCALE).transpose(2, 0, 1)[None]  # (1, 3, H, W)


def rfb_forward(
    run: RfbRun, image: Image.Image, width: int, height: int, floor: float
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``image``: (N, 4) x1, y1, x2, y2 in its pixels and (N,) face scores, those ``>= floor``."""
    outputs = run(rfb_input(image, width, height))
    face = outputs[SCORES_NAME][0, :, 1]  # (N,)
    keep = face >= floor
    scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
    return np.clip(outputs[BOXES_NAME][0][keep], 0, 1) * scale, face[keep]
