"""FaceEmbedder: dlib's face ResNet on torch, with our landmarks and alignment (``models.identity.pipeline``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.artifact import ArtifactError, Manifest
from models.identity.network import DlibFaceResNet
from models.identity.pipeline import FacePipeline
from models.identity.types import RESNET_FILE, EmbedRequest, FaceEmbedding, warmup_request
from models.torch_backend import load_state


class FaceEmbedder:
    """``predict(list[EmbedRequest]) -> list[FaceEmbedding]``; one instance serves one thread at a time."""

    def __init__(
        self, network: DlibFaceResNet, pipeline: FacePipeline, manifest: Manifest, device: torch.device
    ) -> None:
        self.network = network.to(device).eval()
        self.pipeline = pipeline
        self.manifest = manifest
        self.device = device

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device | str = "cpu") -> FaceEmbedder:
        device = torch.device(device)
        pipeline = FacePipeline.from_artifact(folder, manifest)
        network = DlibFaceResNet()
        try:
            network.load_state_dict(load_state(folder, manifest, RESNET_FILE, device))
        except RuntimeError as error:  # missing or mis-shaped weights
            raise ArtifactError(f"{manifest.name}/{manifest.version}: {error}") from error
        return cls(network, pipeline, manifest, device)

    def eval(self) -> FaceEmbedder:
        self.network.eval()
        return self

    def predict(self, batch: list[EmbedRequest]) -> list[FaceEmbedding]:
        return self.pipeline.embed(batch, self.forward)

    @torch.inference_mode()
    def forward(self, chips: np.ndarray) -> np.ndarray:
        """(B, 3, 150, 150) RGB chips in [0, 255] -> (B, 128) raw descriptors."""
        return self.network(torch.from_numpy(chips).to(self.device)).float().cpu().numpy()

    def warmup(self) -> None:
        self.predict([warmup_request()])
