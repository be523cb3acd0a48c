"""OnnxFaceDetector: the exported YOLO network on ONNX Runtime or OpenVINO, with the torch predictor's pipeline.

Torch-free. The ONNX file is the fused network up to the decoded head, (B, 3, H, W) -> (B, 4 + nc, A),
with dynamic batch and sides (multiples of the stride); see ``models.onnx_export``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.artifact import ArtifactError, Manifest
from models.detector.pipeline import check_detector_manifest, detect, input_size, warmup_request
from models.detector.tiling import detect_tiled
from models.detector.types import ONNX_FILE, Detection, DetectRequest
from models.onnx_backend import NetworkSession, Runtime, onnx_metadata, open_session


class OnnxFaceDetector:
    """YOLO detector on an ONNX engine; one instance serves one thread at a time."""

    def __init__(self, session: NetworkSession, manifest: Manifest, stride: int) -> None:
        assert manifest.labels, "a detector manifest needs at least one label"
        assert stride > 0, f"stride must be positive, got {stride}"
        self.session = session
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.stride = stride

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None
    ) -> OnnxFaceDetector:
        """Open the artifact's ``model.onnx`` on ``device`` (``cpu``, ``cuda`` or ``cuda:N``)."""
        check_detector_manifest(manifest)
        stride = onnx_metadata(manifest).get("stride", manifest.hyperparameters.get("stride"))
        if not isinstance(stride, int) or stride <= 0:
            raise ArtifactError(f"{manifest.name}/{manifest.version}: the manifest records no network stride")
        return cls(open_session(folder, manifest, ONNX_FILE, device, runtime), manifest, stride)

    def eval(self) -> OnnxFaceDetector:
        return self  # an inference session has no training mode

    def input_size(self, imgsz: int) -> int:
        """The network input side for a requested ``imgsz`` (a multiple of the stride)."""
        return input_size(imgsz, self.stride)

    def predict(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """Detections for each request, in order; large photos also as tiles; one run per canvas shape."""
        return detect_tiled(
            batch, lambda r: r.imgsz, lambda views: detect(views, self.stride, self.labels, self.forward)
        )

    def forward(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) letterboxed images -> (B, 4 + nc, A) decoded head output."""
        return self.session.run(images)

    def warmup(self) -> None:
        self.predict([warmup_request(self.stride)])
