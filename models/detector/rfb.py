"""The Ultra-Light RFB face detector's contract (Linzaer, MIT): one home for its input and its outputs.

Input ``input`` (1, 3, H, W): the RGB photo stretched to W×H (its authors' resize; the aspect is not
kept), ``(pixel - 127) / 128``, which the sessions compute from the uint8 pixels (``PIXELS``). Outputs
``scores`` (1, N, 2), column 1 the face probability (a softmax over background and face), and ``boxes``
(1, N, 4): x1, y1, x2, y2 as fractions of the width and height, the priors already decoded inside the
ONNX graph. NMS is the caller's. The teacher that labels training photos and the served
``RfbFaceDetector`` both run it through ``rfb_forward``.

A view (the photo at the network's input) is a (H, W, 3) uint8 array. Where OpenCV is installed (the full
image and a development install, through ultralytics) it stretches a photo that is enlarged or barely shrunk:
0.7 ms for a 512 px portrait to 640×480, against Pillow's 3.8 ms, a sixth of the predictor's time. The slim
image has no OpenCV and keeps Pillow's resize; there the two differ by a few levels on a pixel (``tests``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from models.onnx_backend import PixelInput

try:
    import cv2
except ImportError:  # the slim image: Pillow resizes
    cv2 = None  # type: ignore[assignment]

ARCHITECTURE = "ultralight-rfb"
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0
INPUT_NAME, SCORES_NAME, BOXES_NAME = "input", "scores", "boxes"
PIXELS = PixelInput(PIXEL_MEAN, PIXEL_SCALE)  # sessions take the view's uint8 pixels and normalise them
PLAIN_BILINEAR_SCALE = 0.8  # rfb_view: OpenCV's resize from here up, where Pillow's filter is all but bilinear

# (1, H, W, 3) uint8 pixels -> {"scores": (1, N, 2), "boxes": (1, N, 4)}
RfbRun = Callable[[np.ndarray], dict[str, np.ndarray]]


def rfb_view(image: Image.Image, width: int, height: int) -> np.ndarray:
    """The photo as the network sees it: (height, width, 3) RGB, stretched bilinearly (its authors' resize).

    OpenCV's bilinear resize reads two pixels per axis whatever the scale, so it stands in for Pillow's only
    where the photo is enlarged or shrunk a little (``PLAIN_BILINEAR_SCALE``); Pillow's filter widens with
    the reduction and keeps a large photo's small faces from aliasing.
    """
    rgb = image.convert("RGB")
    shrink = min(width / rgb.width, height / rgb.height)
    if cv2 is None or shrink < PLAIN_BILINEAR_SCALE or rgb.size == (width, height):
        return np.asarray(rgb.resize((width, height), Image.Resampling.BILINEAR))
    return cv2.resize(np.asarray(rgb), (width, height), interpolation=cv2.INTER_LINEAR)


def pixels_of(view: np.ndarray) -> np.ndarray:
    """A view's (1, H, W, 3) uint8 pixels: what a session opened with ``PIXELS`` takes."""
    return view[None]


def reduced_view(view: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """``view`` averaged down to ``width`` x ``height`` over whole blocks, when its sides are whole multiples.

    The coarse pass reads the same photo at a whole fraction of the fine input: a block average of the fine
    view costs a tenth of a millisecond where resizing the photo again costs several. ``None`` when the
    sides do not divide evenly.
    """
    rows, columns = view.shape[:2]
    if columns % width or rows % height or columns // width != rows // height:
        return None
    if cv2 is not None:
        return cv2.resize(view, (width, height), interpolation=cv2.INTER_AREA)  # whole blocks: their mean
    return np.asarray(Image.fromarray(view).reduce(columns // width))


def rfb_forward(
    run: RfbRun, image: Image.Image, width: int, height: int, floor: float, view: np.ndarray | None = None
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
