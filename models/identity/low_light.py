"""A synthetic low-light check: the same faces darkened, through the same landmarks and embedder.

LFW has no low-light photos, so this measures only what darkening does to our pipeline after detection:
each photo's pixels are scaled by ``BRIGHTNESS`` and given sensor-like noise, then JPEG-compressed;
the detector's boxes of the original photo are kept (detection in the dark is not measured here).
Pairs are the ``report`` half's covered pairs (at most ``MAX_PAIRS``), at the shipped distance.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.artifact import Manifest
from models.identity.collect import central_box, load_rgb
from models.identity.lfw import Pair, half, person
from models.identity.types import EmbedRequest

BRIGHTNESS = 0.25
NOISE = 3.0
MAX_PAIRS = 400
SEED = 5


def darken(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dark = image.astype(np.float32) * BRIGHTNESS + rng.normal(0.0, NOISE, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(dark + 0.5, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return np.asarray(Image.open(buffer).convert("RGB"))


def low_light(
    folder: Path, manifest: Manifest, root: Path, pairs: list[Pair], boxes: dict[str, list], threshold: float
) -> dict[str, Any]:
    """Accuracy at ``threshold`` on the same pairs, original and darkened."""
    from models.identity.onnx_predictor import OnnxFaceEmbedder
    from models.onnx_backend import Runtime

    embedder = OnnxFaceEmbedder.from_artifact(folder, manifest, "cpu", Runtime("openvino", precision="f32"))
    chosen = [p for p in pairs if half(person(p.first)) == "report"][:MAX_PAIRS]
    keys = sorted({p.first for p in chosen} | {p.second for p in chosen})
    rng = np.random.default_rng(SEED)
    vectors: dict[str, dict[str, np.ndarray]] = {"original": {}, "dark": {}}
    for key in keys:
        image = load_rgb(root, key)
        box = central_box(boxes[key], image.shape)
        assert box is not None, "the pairs are covered ones"
        for name, pixels in (("original", image), ("dark", darken(image, rng))):
            result = embedder.predict([EmbedRequest(pixels, (box[0], box[1], box[2], box[3]))])[0]
            assert result.descriptor is not None
            vectors[name][key] = result.descriptor
    same = np.array([p.same for p in chosen])
    accuracy = {}
    for name, found in vectors.items():
        distances = np.array([np.linalg.norm(found[p.first] - found[p.second]) for p in chosen])
        accuracy[name] = float(np.mean((distances <= threshold) == same))
    return {"pairs": len(chosen), "brightness": BRIGHTNESS, "noise": NOISE, "accuracy": accuracy}
