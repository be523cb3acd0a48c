"""FaceClassifier: the predictor for face crops (``preprocess -> forward -> postprocess``), run by torch.

Pre- and post-processing are the shared, torch-free ``models.classifier.pipeline`` (the ONNX predictor
uses the same).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.classifier.network import FaceNet
from models.classifier.pipeline import (
    check_classifier_manifest,
    classifications,
    crop_margin,
    flip_tta,
    preprocess,
    preprocess_crop,
    temperature,
)
from models.classifier.types import ARCHITECTURE, DEFAULT_CROP_MARGIN, WEIGHTS_FILE, Classification
from models.torch_backend import load_state

__all__ = ["ARCHITECTURE", "DEFAULT_CROP_MARGIN", "WEIGHTS_FILE", "Classification", "FaceClassifier", "build_network"]


class FaceClassifier:
    """Classifies face crops of any size; one instance per thread (not thread-safe)."""

    def __init__(self, network: FaceNet, manifest: Manifest, device: torch.device) -> None:
        assert manifest.input is not None, "a classifier manifest needs an input spec"
        assert len(manifest.labels) == network.head.out_features, "labels do not match the network's classes"
        self.network = network.to(device).eval()
        self.manifest = manifest
        self.device = device
        self.labels = list(manifest.labels)
        self.spec = manifest.input
        self.input_size = manifest.input.size

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> FaceClassifier:
        check_classifier_manifest(manifest)
        network = build_network(manifest)
        try:
            network.load_state_dict(load_state(folder, manifest, WEIGHTS_FILE, device))
        except RuntimeError as error:  # missing or mis-shaped tensors
            raise ArtifactError(f"{manifest.name}/{manifest.version}: weights do not fit: {error}") from error
        return cls(network, manifest, device)

    def eval(self) -> FaceClassifier:
        self.network.eval()
        return self

    @property
    def crop_margin(self) -> float:
        """How much the HTTP layer should grow a detector box (per side, fraction of its size) before cropping."""
        return crop_margin(self.manifest)

    def transform(self, pixels: torch.Tensor) -> torch.Tensor:
        """The served preprocessing of one (3, H, W) uint8 crop -> (3, S, S); evaluation runs data through it."""
        image = Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())  # (H, W, 3) uint8 is RGB
        return torch.from_numpy(preprocess_crop(image, self.spec.size, self.spec.mean, self.spec.std))

    def predict(self, batch: list[Image.Image]) -> list[Classification]:
        if not batch:
            return []
        flip = flip_tta(self.manifest)
        with torch.inference_mode():
            images = torch.from_numpy(preprocess(batch, self.spec, flip)).to(self.device)  # (B or 2B, 3, S, S)
            logits = self.network(images).float().cpu().numpy()  # (B or 2B, C)
            return classifications(logits, self.labels, flip, temperature(self.manifest))

    def warmup(self) -> None:
        self.predict([Image.new("RGB", (self.input_size, self.input_size), (128, 128, 128))])


def build_network(manifest: Manifest) -> FaceNet:
    """The network the manifest describes (random weights)."""
    hyper = manifest.hyperparameters
    return FaceNet(
        widths=tuple(hyper.get("widths", (32, 64, 128, 256))),
        num_classes=len(manifest.labels),
        dropout=float(hyper.get("dropout", 0.0)),
    )
