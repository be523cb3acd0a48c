"""RfbFaceDetector: the imported Ultra-Light RFB network (``architecture: ultralight-rfb``) behind ``/detect``.

Torch-free: the artifact ships the authors' ONNX file (fixed input, priors decoded inside), so it runs on
ONNX Runtime or OpenVINO only; the service's torch backend runs it on ONNX Runtime and says so
(``backend``). The same post-processing contract as the YOLO predictors: ``conf`` (here the network's face
probability), NMS at the request's IoU, ``max_det``, boxes in the photo's pixels, ``min_size`` on them, and
tiling of large photos (``models.detector.tiling``). Boxes are served in the convention the manifest
records (``hyperparameters.box_convention.served``): the teacher's WIDER-FACE framing mapped to the
hand-drawn face-boxes framing the YOLO detectors learnt, so either architecture frames a face alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.detector.boxes import greedy_nms
from models.detector.pseudo_labels import BoxConvention
from models.detector.rfb import ARCHITECTURE, RfbRun, rfb_forward
from models.detector.tiling import detect_tiled
from models.detector.types import ONNX_FILE, Detection, DetectRequest
from models.onnx_backend import Runtime, open_session

SCORE_FLOOR = 0.01  # below this the network's softmax says background; never worth an NMS pass


def ships_as_onnx(manifest: Manifest) -> bool:
    """Whether an artifact's network exists only as its ONNX file (no torch weights to export from)."""
    return manifest.architecture == ARCHITECTURE


def served_convention(manifest: Manifest) -> BoxConvention:
    """The mapping from the network's box framing to the served one, as the manifest records it."""
    mapping = manifest.hyperparameters.get("box_convention", {}).get("mapping", {})
    return BoxConvention(**mapping) if mapping else BoxConvention()


class RfbFaceDetector:
    """The RFB detector on an ONNX engine; one instance serves one thread at a time."""

    def __init__(self, run: RfbRun, manifest: Manifest, width: int, height: int, backend: str) -> None:
        assert manifest.labels == ["face"], "the RFB detector finds one class: face"
        self.run = run
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.width, self.height = width, height
        self.convention = served_convention(manifest)
        self.backend = backend

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None, note: str = ""
    ) -> RfbFaceDetector:
        """Open the artifact's ``model.onnx`` on ``runtime``'s engine; ``note`` says why this engine, if asked."""
        if not ships_as_onnx(manifest) or manifest.task != "detect":
            raise ArtifactError(f"{manifest.name}/{manifest.version}: not an {ARCHITECTURE} detector")
        size = manifest.hyperparameters.get("input_width"), manifest.hyperparameters.get("input_height")
        if not all(isinstance(side, int) and side > 0 for side in size):
            raise ArtifactError(f"{manifest.name}/{manifest.version}: the manifest records no input width and height")
        runtime = runtime or Runtime()
        session = open_session(folder, manifest, ONNX_FILE, device, runtime)
        backend = runtime.engine + (f" ({note})" if note else "")
        return cls(session.run_named, manifest, int(size[0]), int(size[1]), backend)  # type: ignore[arg-type]

    def eval(self) -> RfbFaceDetector:
        return self  # an inference session has no training mode

    def input_size(self, imgsz: int) -> int:
        """The network's input width: fixed by the export, whatever ``imgsz`` asks."""
        return self.width

    def predict(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """Detections for each request, in order; large photos also as tiles; one run per view (batch 1)."""
        return detect_tiled(batch, lambda _: self.width, lambda views: [self.detect_one(r) for r in views])

    def detect_one(self, request: DetectRequest) -> list[Detection]:
        boxes, scores = rfb_forward(self.run, request.image, self.width, self.height, max(request.conf, SCORE_FLOOR))
        order = np.argsort(-scores, kind="stable")
        boxes, scores = boxes[order], scores[order]
        kept = greedy_nms(boxes, request.iou, request.max_det)
        width, height = request.image.size
        served = np.clip(self.convention.apply(boxes[kept]), 0, [width, height, width, height])  # (n, 4)
        return [
            Detection(box=(x1, y1, x2, y2), score=float(score), label=self.labels[0])
            for (x1, y1, x2, y2), score in zip(served.tolist(), scores[kept].tolist(), strict=True)
            if min(x2 - x1, y2 - y1) >= request.min_size
        ]

    def warmup(self) -> None:
        image = Image.new("RGB", (64, 48), (114, 114, 114))
        self.predict([DetectRequest(image=image, conf=0.25, iou=0.3, max_det=1, imgsz=self.width)])
