"""A teacher face detector: the Ultra-Light RFB ONNX model that labels real photos for training.

The teacher is given by path (``../shared/data/weights/ultralight-face-rfb/version-RFB-640.onnx``), like
the style trainer's loss network; the same network also ships, imported with its licence, as a served
``face-detector`` version (``models.detector.rfb_predictor``). Its input and outputs are described once,
in ``models.detector.rfb``; NMS (IoU 0.3) is ours.

A crowd photo of 1,600 px shrinks to 640 px for the teacher and its 20-pixel faces to 8: photos more
than ``TILE_ABOVE`` times the input side are also read as overlapping tiles (the served detectors' grid,
``models.detector.tiling``), and the boxes of all passes merged by NMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.detector.boxes import greedy_nms
from models.detector.rfb import BOXES_NAME, INPUT_NAME, PIXELS, SCORES_NAME, rfb_forward
from models.detector.tiling import TILE_ABOVE, TILE_OVERLAP, tiles

__all__ = ["TILE_ABOVE", "TILE_OVERLAP", "FaceTeacher", "TeacherDetections", "merge", "tiles"]

TEACHER_NMS_IOU = 0.3
SCORE_FLOOR = 0.3  # detections below this are dropped: neither faces nor regions to ignore
TEACHER_MAX_TILES = 16  # labelling is offline: no latency bound, every tile at about the input's resolution


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

    def run(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        feed = {INPUT_NAME: PIXELS.normalise(pixels)}
        scores, boxes = self.session.run([SCORES_NAME, BOXES_NAME], feed)  # type: ignore[attr-defined]
        return {SCORES_NAME: scores, BOXES_NAME: boxes}

    def forward(self, image: Image.Image) -> TeacherDetections:
        """One pass over the whole ``image`` resized to the teacher's input; boxes in ``image`` pixels."""
        return TeacherDetections(*rfb_forward(self.run, image, self.width, self.height, SCORE_FLOOR))

    def detect(self, image: Image.Image) -> TeacherDetections:
        """The whole photo, plus overlapping tiles when it is large, merged by NMS."""
        passes = [self.forward(image)]
        for left, top, right, bottom in tiles(image.width, image.height, self.width, max_tiles=TEACHER_MAX_TILES):
            part = self.forward(image.crop((left, top, right, bottom)))
            passes.append(TeacherDetections(part.boxes + np.array([left, top, left, top]), part.scores))
        return merge(passes)


def merge(passes: list[TeacherDetections]) -> TeacherDetections:
    """Pool the passes' detections and keep NMS's survivors, best score first."""
    boxes = np.concatenate([p.boxes for p in passes]).reshape(-1, 4).astype(np.float32)
    scores = np.concatenate([p.scores for p in passes]).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    kept = order[greedy_nms(boxes[order], TEACHER_NMS_IOU, max_det=10_000)]
    return TeacherDetections(boxes[kept], scores[kept])
