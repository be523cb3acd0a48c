"""OnnxFaceClassifier: the exported FaceNet on ONNX Runtime or OpenVINO, with the torch predictor's pipeline.

Torch-free. The ONNX file maps (B, 3, S, S) normalised crops to (B, num_classes) logits, dynamic batch.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.classifier.pipeline import (
    check_classifier_manifest,
    classifications,
    crop_margin,
    flip_tta,
    preprocess,
    temperature,
)
from models.classifier.types import ONNX_FILE, Classification
from models.onnx_backend import NetworkSession, Runtime, open_session


class OnnxFaceClassifier:
    """Classifies face crops of any size on an ONNX engine; one instance per thread (not thread-safe)."""

    def __init__(self, session: NetworkSession, manifest: Manifest) -> None:
        self.session = session
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.spec = check_classifier_manifest(manifest)
        self.input_size = self.spec.size

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None
    ) -> OnnxFaceClassifier:
        """Open the artifact's ``model.onnx`` on ``device`` (``cpu``, ``cuda`` or ``cuda:N``)."""
        check_classifier_manifest(manifest)
        session = open_session(folder, manifest, ONNX_FILE, device, runtime)
        classes = session.output_shape[-1]
        if isinstance(classes, int) and classes != len(manifest.labels):
            raise ArtifactError(f"{manifest.name}/{manifest.version}: {ONNX_FILE} gives {classes} classes")
        return cls(session, manifest)

    def eval(self) -> OnnxFaceClassifier:
        return self  # an inference session has no training mode

    @property
    def crop_margin(self) -> float:
        """How much the HTTP layer should grow a detector box (per side, fraction of its size) before cropping."""
        return crop_margin(self.manifest)

    def predict(self, batch: list[Image.Image]) -> list[Classification]:
        if not batch:
            return []
        flip = flip_tta(self.manifest)
        logits = self.session.run(preprocess(batch, self.spec, flip))  # (B or 2B, C)
        return classifications(logits, self.labels, flip, temperature(self.manifest))

    def warmup(self) -> None:
        self.predict([Image.new("RGB", (self.input_size, self.input_size), (128, 128, 128))])
