"""The Ultra-Light RFB face detector's contract (Linzaer, MIT): one home for its input and its outputs.

Input ``input`` (1, 3, H, W): the RGB photo stretched to W×H (its authors' resize; the aspect is not
kept), ``(pixel - 127) / 128``, which the sessions compute from the uint8 pixels (``PIXELS``). Outputs
``scores`` (1, N, 2), column 1 the face probability (a softmax over background and face), and ``boxes``
(1, N, 4): x1, y1, x2, y2 as fractions of the width and height, the priors already decoded inside the
ONNX graph. NMS is the caller's. The teacher that labels training photos and the served
``RfbFaceDetector`` both run it through ``rfb_forward``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from models.onnx_backend import PixelInput

ARCHITECTURE = "ultralight-rfb"
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0
INPUT_NAME, SCORES_NAME, BOXES_NAME = "input", "scores", "boxes"
PIXELS = PixelInput(PIXEL_MEAN, PIXEL_SCALE)  # sessions take the view's uint8 pixels and normalise them

# (1, H, W, 3) uint8 pixels -> {"scores": (1, N, 2), "boxes": (1, N, 4)}
RfbRun = Callable[[np.ndarray], dict[str, np.ndarray]]


def rfb_view(image: Image.Image, width: int, height: int) -> Image.Image:
    """The photo as the network sees it: RGB, stretched to ``width`` x ``height`` (its authors' resize)."""
    return image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)


def pixels_of(view: Image.Image) -> np.ndarray:
    """A view's (1, H, W, 3) uint8 pixels: what a session opened with ``PIXELS`` takes."""
    return np.asarray(view)[None]


def reduced_view(view: Image.Image, width: int, height: int) -> Image.Image | None:
    """``view`` averaged down to ``width`` x ``height`` over whole blocks, when its sides are whole multiples.

    The coarse pass reads the same photo at a whole fraction of the fine input: Pillow's block average of
    the fine view costs a tenth of a millisecond where resizing the photo again costs several. ``None``
    when the sides do not divide evenly.
    """
    if view.width % width or view.height % height or view.width // width != view.height // height:
        return None
    return view.reduce(view.width // width)


def rfb_forward(
    run: RfbRun, image: Image.Image, width: int, height: int, floor: float, view: Image.Image | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``image``: (N, 4) x1, y1, x2, y2 in its pixels and (N,) face scores, those ``>= floor``.

    ``run`` takes pixels (a session opened with ``PIXELS``); ``view``: ``image`` already at the network's
    input size (``rfb_view``), when the caller has it.
    """
    outputs = run(pixels_of(rfb_view(image, width, height) if view is None else view))
    face = outputs[SCORES_NAME][0, :, 1]  # (N,)
    keep = face >= floor
    scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
    return np.clip(outputs[BOXES_NAME][0][keep], 0, 1) * scale, face[keep]
