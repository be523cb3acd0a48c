"""Precompute, once, what training needs from the natural-face images: a face box per portrait and a
perceptual hash per image (near-duplicates then stay in one split). Torch-free.

The boxes come from a teacher detector (the Ultra-Light RFB ONNX of ``../shared``), passed on the command
line and never shipped; the cache is a small JSON file kept beside the data, outside the repository, with
paths relative to the data root:

    {"detector": "version-RFB-640.onnx", "detector_sha256": ..., "min_score": 0.7,
     "files": {"portraits/female/x.jpg": {"box": [x1, y1, x2, y2], "score": 0.99, "dhash": "9f3a..."},
               "crops/male/y.jpg": {"box": null, "dhash": "..."}}}

    deepcanvas data classifier-boxes ../shared/data/faces-gender /work/data/faces-gender/boxes.json \
        --detector ../shared/data/weights/ultralight-face-rfb/version-RFB-640.onnx
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image

BOXED_SUBSETS = ("portraits",)  # head-and-shoulder photos: the face is cropped by its box
SUBSETS = ("crops", "portraits")
LABEL_DIRS = ("female", "male")
DetectFn = Callable[[Image.Image], tuple[list[float], float] | None]


def image_files(root: Path) -> list[str]:
    """Every ``<subset>/<label>/*.jpg`` under ``root``, relative and sorted."""
    found = [p for subset in SUBSETS for label in LABEL_DIRS for p in (root / subset / label).glob("*.jpg")]
    return sorted(p.relative_to(root).as_posix() for p in found)


def dhash(image: Image.Image, side: int = 8) -> str:
    """64-bit difference hash: near-identical pictures (re-encoded, resized) get hashes a few bits apart."""
    small = np.asarray(image.convert("L").resize((side + 1, side), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()  # (side * side,)
    return f"{int(''.join('1' if b else '0' for b in bits), 2):0{side * side // 4}x}"


def group_near_duplicates(hashes: list[str], max_bits: int = 4) -> list[int]:
    """A group index per hash: hashes within ``max_bits`` of each other (transitively) share one."""
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    parent = list(range(len(values)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(values)):
        xor = np.bitwise_xor(values[i + 1 :], values[i])  # (n - i - 1,)
        distance = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for j in np.flatnonzero(distance <= max_bits) + i + 1:
            parent[find(int(j))] = find(i)
    return [find(i) for i in range(len(values))]


class TeacherDetector:
    """The Ultra-Light RFB face detector on ONNX Runtime: the most confident face of a photo, if any."""

    def __init__(self, onnx_path: Path, min_score: float = 0.7) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3  # the exported graph lists its weights as inputs: harmless warnings
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        _, _, self.height, self.width = self.session.get_inputs()[0].shape
        self.min_score = min_score

    def __call__(self, image: Image.Image) -> tuple[list[float], float] | None:
        """``([x1, y1, x2, y2] in the image's pixels, score)`` of the best face, or None."""
        resized = image.convert("RGB").resize((self.width, self.height), Image.Resampling.BILINEAR)
        pixels = (np.asarray(resized, dtype=np.float32) - 127) / 128  # (H, W, 3)
        scores, boxes = self.session.run(["scores", "boxes"], {"input": pixels.transpose(2, 0, 1)[None]})
        faces = scores[0, :, 1]  # (N,)
        best = int(faces.argmax())
        if faces[best] < self.min_score:
            return None
        x1, y1, x2, y2 = np.clip(boxes[0, best], 0, 1) * [image.width, image.height, image.width, image.height]
        return [round(float(v), 1) for v in (x1, y1, x2, y2)], round(float(faces[best]), 4)


def build_cache(root: Path, detect: DetectFn) -> dict[str, dict[str, Any]]:
    """Per relative path: the hash, and for boxed subsets the detected box (None: no face found)."""
    entries: dict[str, dict[str, Any]] = {}
    for relative in image_files(root):
        with Image.open(root / relative) as image:
            entry: dict[str, Any] = {"box": None, "dhash": dhash(image)}
            if relative.split("/")[0] in BOXED_SUBSETS:
                found = detect(image)
                entry.update(box=found[0], score=found[1]) if found else entry.update(score=None)
        entries[relative] = entry
    return entries


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cache's ``files`` mapping (relative path -> entry)."""
    return dict(json.loads(path.read_text())["files"])


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(
    data_root: Path,
    cache: Path,
    detector: Annotated[Path, typer.Option(help="The teacher detector's ONNX file (never shipped)")],
    min_score: float = 0.7,
) -> None:
    """Detect the face of every portrait under DATA_ROOT and hash every image; write the JSON CACHE."""
    entries = build_cache(data_root, TeacherDetector(detector, min_score))
    missed = [k for k, v in entries.items() if k.split("/")[0] in BOXED_SUBSETS and v["box"] is None]
    document = {
        "detector": detector.name,
        "detector_sha256": file_sha256(detector),
        "min_score": min_score,
        "note": "boxes [x1, y1, x2, y2] in pixels of the original image; paths relative to the data root",
        "files": entries,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(document, indent=1, sort_keys=True))
    print(f"{len(entries)} images, {len(missed)} portraits without a face >= {min_score}: {missed[:10]}")
