"""The Ultra-Light RFB face detector's contract (Linzaer, MIT): one home for its input and its outputs.

Input ``input`` (1, 3, H, W): the RGB photo stretched to W×H (its authors' resize; the aspect is not
kept), ``(pixel - 127) / 128``, which the sessions compute from the uint8 pixels (``PIXELS``). Outputs
``scores`` (1, N, 2), column 1 the face probability (a softmax over background and face), and ``boxes``
(1, N, 4): x1, y1, x2, y2 as fractions of the width and height, the priors already decoded inside the
ONNX graph. NMS is the caller's. The teacher that labels training photos and the served
``RfbFaceDetector`` both run it through ``rfb_forward``.

A **view graph** (``views`` in an artifact's manifest) is the same graph cut before its prior decoding: its
outputs are ``scores`` and the raw ``locations`` (1, N, 4), and its input takes any height and width. The
priors are then made here for the input size (``rfb_priors``, the authors' layout) and only the boxes that pass
the score floor are decoded (``Priors.decode``), where the whole graph decodes every prior of every call.

A view (the photo at the network's input) is a (H, W, 3) uint8 array. Where OpenCV is installed (the full
image and a development install, through ultralytics) it stretches a photo that is enlarged or barely shrunk:
0.7 ms for a 512 px portrait to 640×480, against Pillow's 3.8 ms, a sixth of the predictor's time. The slim
image has no OpenCV and keeps Pillow's resize; there the two differ by a few levels on a pixel (``tests``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from models.onnx_backend import PixelInput

try:
    import cv2
except ImportError:  # the slim image: Pillow resizes
    cv2 = None  # type: ignore[assignment]

ARCHITECTURE = "ultralight-rfb"
PIXEL_MEAN, PIXEL_SCALE = 127.0, 128.0
INPUT_NAME, SCORES_NAME, BOXES_NAME, LOCATIONS_NAME = "input", "scores", "boxes", "locations"
PIXELS = PixelInput(PIXEL_MEAN, PIXEL_SCALE)  # sessions take the view's uint8 pixels and normalise them
PLAIN_BILINEAR_SCALE = 0.8  # rfb_view: OpenCV's resize from here up, where Pillow's filter is all but bilinear

# (1, H, W, 3) uint8 pixels -> {"scores": (1, N, 2), "boxes": (1, N, 4)} (a view graph: "locations" for "boxes")
RfbRun = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class PriorSpec:
    """The RFB networks' prior boxes (the authors' ``fd_config``): one feature map per stride, the box sides of
    each, and the variances the locations are encoded with. The RFB-640 and RFB-320 share them."""

    strides: tuple[int, ...] = (8, 16, 32, 64)
    min_boxes: tuple[tuple[int, ...], ...] = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
    center_variance: float = 0.1
    size_variance: float = 0.2

    def as_dict(self) -> dict[str, Any]:
        return {
            "strides": list(self.strides),
            "min_boxes": [list(sides) for sides in self.min_boxes],
            "center_variance": self.center_variance,
            "size_variance": self.size_variance,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> PriorSpec:
        return cls(
            tuple(int(s) for s in spec["strides"]),
            tuple(tuple(int(side) for side in sides) for sides in spec["min_boxes"]),
            float(spec["center_variance"]),
            float(spec["size_variance"]),
        )


@dataclasses.dataclass(frozen=True)
class Priors:
    """The priors of one input size, (N, 4) centre x, centre y, width, height as fractions of the input."""

    boxes: np.ndarray
    spec: PriorSpec

    def decode(self, locations: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The kept priors' (n, 4) x1, y1, x2, y2 fractions from their (N, 4) raw locations (the graph's decode)."""
        priors, found = self.boxes[keep], locations[keep]
        centres = found[:, :2] * self.spec.center_variance * priors[:, 2:] + priors[:, :2]
        sides = np.exp(found[:, 2:] * self.spec.size_variance) * priors[:, 2:]
        return np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)


@lru_cache(maxsize=32)
def rfb_priors(width: int, height: int, spec: PriorSpec = PriorSpec()) -> Priors:
    """The priors for a ``width`` × ``height`` input, in the graph's order (stride, row, column, box side).

    As the authors make them: a feature map of ceil(side / stride) cells per axis, each cell's centre at
    (index + 0.5) / cells, each box side over the input's side; clipped to [0, 1].
    """
    boxes = []
    for stride, sides in zip(spec.strides, spec.min_boxes, strict=True):
        columns, rows = -(-width // stride), -(-height // stride)
        x, y = np.meshgrid((np.arange(columns) + 0.5) / columns, (np.arange(rows) + 0.5) / rows)
        centres = np.repeat(np.stack([x.ravel(), y.ravel()], axis=1), len(sides), axis=0)
        shapes = np.tile([[side / width, side / height] for side in sides], (rows * columns, 1))
        boxes.append(np.concatenate([centres, shapes], axis=1))
    return Priors(np.clip(np.concatenate(boxes), 0, 1).astype(np.float32), spec)


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
    run: RfbRun,
    image: Image.Image,
    width: int,
    height: int,
    floor: float,
    view: np.ndarray | None = None,
    priors: Priors | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``image``: (N, 4) x1, y1, x2, y2 in its pixels and (N,) face scores, those ``>= floor``.

    ``run`` takes pixels (a session opened with ``PIXELS``); ``view``: ``image`` already at the network's
    input size (``rfb_view``), when the caller has it; ``priors``: the input size's priors when ``run`` is a
    view graph (raw locations out), None when the graph decodes its own boxes.
    """
    outputs = run(pixels_of(rfb_view(image, width, height) if view is None else view))
    face = outputs[SCORES_NAME][0, :, 1]  # (N,)
    keep = face >= floor
    boxes = outputs[BOXES_NAME][0][keep] if priors is None else priors.decode(outputs[LOCATIONS_NAME][0], keep)
    scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
    return np.clip(boxes, 0, 1) * scale, face[keep]
