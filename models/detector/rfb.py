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


def pooled_input(array: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """``array`` (an ``rfb_input``) averaged down to ``width`` x ``height`` when its sides are whole multiples.

    The coarse pass reads the same photo at a whole fraction of the fine input: pooling the fine input costs
    a fraction of a millisecond where resizing the photo again costs several. ``None`` when the sides do not
    divide evenly.
    """
    _, channels, fine_height, fine_width = array.shape
    if fine_width % width or fine_height % height or fine_width // width != fine_height // height:
        return None
    k = fine_width // width
    total = np.zeros((1, channels, height, width), dtype=np.float32)
    for dy in range(k):  # k * k strided adds: numpy's mean over the reshaped axes is ten times slower
        for dx in range(k):
            total += array[:, :, dy::k, dx::k]
    return total * np.float32(1 / (k * k))


def rfb_forward(
    run: RfbRun, image: Image.Image, width: int, height: int, floor: float, array: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``image``: (N, 4) x1, y1, x2, y2 in its pixels and (N,) face scores, those ``>= floor``.

    ``array``: the network input already made from ``image`` (``rfb_input``), when the caller has it.
    """
    outputs = run(rfb_input(image, width, height) if array is None else array)
    face = outputs[SCORES_NAME][0, :, 1]  # (N,)
    keep = face >= floor
    scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
    return np.clip(outputs[BOXES_NAME][0][keep], 0, 1) * scale, face[keep]
