"""OnnxFaceEmbedder: the exported face ResNet on ONNX Runtime or OpenVINO, with the torch predictor's pipeline.

Torch-free. ``resnet.onnx`` maps (B, 3, 150, 150) RGB chips in [0, 255] to (B, 128) raw descriptors
(the input normalisation is inside the graph); batch dynamic. See ``models.onnx_export``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.artifact import Manifest
from models.identity.pipeline import FacePipeline
from models.identity.types import ONNX_FILE, EmbedRequest, FaceEmbedding, warmup_request
from models.onnx_backend import NetworkSession, Runtime, open_session


class OnnxFaceEmbedder:
    """``predict(list[EmbedRequest]) -> list[FaceEmbedding]`` on an ONNX engine; one thread at a time."""

    def __init__(self, session: NetworkSession, pipeline: FacePipeline, manifest: Manifest) -> None:
        self.session = session
        self.pipeline = pipeline
        self.manifest = manifest

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None
    ) -> OnnxFaceEmbedder:
        pipeline = FacePipeline.from_artifact(folder, manifest)
        return cls(open_session(folder, manifest, ONNX_FILE, device, runtime), pipeline, manifest)

    def eval(self) -> OnnxFaceEmbedder:
        return self  # an inference session has no training mode

    def predict(self, batch: list[EmbedRequest]) -> list[FaceEmbedding]:
        return self.pipeline.embed(batch, self.forward)

    def forward(self, chips: np.ndarray) -> np.ndarray:
        return self.session.run(chips)

    def warmup(self) -> None:
        self.predict([warmup_request()])
