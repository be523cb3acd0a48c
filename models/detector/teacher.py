"""A teacher face detector: the Ultra-Light RFB ONNX model that labels real photos for training.

The teacher is given by path (``../shared/data/weights/ultralight-face-rfb/version-RFB-640.onnx``), like
the style trainer's loss network, and never ships. Its contract (from its authors): input ``input``
(1, 3, H, W), the RGB photo resized to W×H, ``(pixel - 127) / 128``; outputs ``scores`` (1, N, 2), column
1 the face score, and ``boxes`` (1, N, 4), x1, y1, x2, y2 as fractions of the image; NMS (IoU 0.3) is ours.

A crowd photo of 1,600 px shrinks to 640 px for the teacher and its 20-pixel faces to 8: photos more
than ``TILE_ABOVE`` times the input side are also read as overlapping tiles, and the boxes of both
passes merged by NMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.detector.boxes import greedy_nms

TEACHER_NMS_IOU = 0.3
SCORE_FLOOR = 0.3  # detections below this are dropped: neither faces nor regions to ignore
TILE_ABOVE = 1.5  # tile photos whose longer side exceeds this many input widths
TILE_OVERLAP = 0.25


@dataclass(frozen=True)
class TeacherDetections:
    """A photo's teacher detections in its pixels: (N, 4) x1, y1, x2, y2 and (N,) scores, best first."""

    boxes: np.ndarray
    scores: np.ndarray


class FaceTeacher:
    """The RFB face detector on ONNX Runtime; one instance serves one thread at a time."""

    def __init__(self, session: object, width: int, height: int, name: str) -> None:
        self.session = session
        self.width, self.height = width, height
        self.name = name

    @classmethod
    def from_onnx(cls, path: Path, threads: int = 1) -> FaceTeacher:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # the export lists its weights as inputs too: one warning per weight
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        _, _, height, width = session.get_inputs()[0].shape  # (1, 3, H, W), fixed by the export
        return cls(session, int(width), int(height), path.name)

    def forward(self, image: Image.Image) -> TeacherDetections:
        """One pass over the whole ``image`` resized to the teacher's input; boxes in ``image`` pixels."""
        resized = np.asarray(image.convert("RGB").resize((self.width, self.height), Image.Resampling.BILINEAR))
        tensor = ((resized.astype(np.float32) - 127) / 128).transpose(2, 0, 1)[None]  # (1, 3, H, W)
        scores, boxes = self.session.run(["scores", "boxes"], {"input": tensor})  # type: ignore[attr-defined]
        face = scores[0, :, 1]  # (N,)
        keep = face >= SCORE_FLOOR
        scale = np.array([image.width, image.height, image.width, image.height], dtype=np.float32)
        return TeacherDetections(np.clip(boxes[0][keep], 0, 1) * scale, face[keep])

    def detect(self, image: Image.Image) -> TeacherDetections:
        """The whole photo, plus overlapping tiles when it is large, merged by NMS."""
        passes = [self.forward(image)]
        for left, top, right, bottom in tiles(image.width, image.height, self.width):
            part = self.forward(image.crop((left, top, right, bottom)))
            passes.append(TeacherDetections(part.boxes + np.array([left, top, left, top]), part.scores))
        return merge(passes)


def tiles(width: int, height: int, side: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles of about twice the teacher's resolution, or none for a photo it already sees well."""
    if max(width, height) <= TILE_ABOVE * side:
        return []
    columns, rows = (max(1, round(extent / side)) for extent in (width, height))
    tile_w = min(width, width / columns / (1 - TILE_OVERLAP))
    tile_h = min(height, height / rows / (1 - TILE_OVERLAP))
    result = []
    for row in range(rows):
        for column in range(columns):
            left = min(max(0.0, column * width / columns - TILE_OVERLAP / 2 * tile_w), width - tile_w)
            top = min(max(0.0, row * height / rows - TILE_OVERLAP / 2 * tile_h), height - tile_h)
            result.append((round(left), round(top), round(left + tile_w), round(top + tile_h)))
    return result if len(result) > 1 else []


def merge(passes: list[TeacherDetections]) -> TeacherDetections:
    """Pool the passes' detections and keep NMS's survivors, best score first."""
    boxes = np.concatenate([p.boxes for p in passes]).reshape(-1, 4).astype(np.float32)
    scores = np.concatenate([p.scores for p in passes]).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    kept = order[greedy_nms(boxes[order], TEACHER_NMS_IOU, max_det=10_000)]
    return TeacherDetections(boxes[kept], scores[kept])
