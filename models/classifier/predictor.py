"""FaceClassifier: the predictor for face crops (``preprocess -> forward -> postprocess``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.classifier.network import FaceNet
from models.classifier.transforms import eval_transform, image_to_uint8
from models.predictor import load_state

WEIGHTS_FILE = "weights.safetensors"
ARCHITECTURE = "facenet"
# Fraction by which a detector box is grown on each side before cropping; the training crops were
# zoomed between 0.75x and 1.2x, and a 0.1 margin (zoom 1/1.2 = 0.83x) sits inside that range.
DEFAULT_CROP_MARGIN = 0.1


@dataclass(frozen=True)
class Classification:
    label: str
    score: float  # probability of ``label``
    probabilities: dict[str, float]


class FaceClassifier:
    """Classifies face crops of any size; one instance per thread (not thread-safe)."""

    def __init__(self, network: FaceNet, manifest: Manifest, device: torch.device) -> None:
        assert manifest.input is not None, "a classifier manifest needs an input spec"
        assert len(manifest.labels) == network.head.out_features, "labels do not match the network's classes"
        self.network = network.to(device).eval()
        self.manifest = manifest
        self.device = device
        self.labels = list(manifest.labels)
        self.input_size = manifest.input.size
        self.transform = eval_transform(manifest.input.size, manifest.input.mean, manifest.input.std)

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> FaceClassifier:
        if manifest.architecture != ARCHITECTURE:
            raise ArtifactError(f"{manifest.name}: architecture {manifest.architecture!r} is not {ARCHITECTURE!r}")
        if manifest.input is None or not manifest.labels:
            raise ArtifactError(f"{manifest.name}: a classifier manifest needs input and labels")
        network = build_network(manifest)
        try:
            network.load_state_dict(load_state(folder, manifest, WEIGHTS_FILE, device))
        except RuntimeError as error:  # missing or mis-shaped tensors
            raise ArtifactError(f"{manifest.name}/{manifest.version}: weights do not fit: {error}") from error
        return cls(network, manifest, device)

    @property
    def crop_margin(self) -> float:
        """How much the HTTP layer should grow a detector box (per side, fraction of its size) before cropping."""
        return float(self.manifest.hyperparameters.get("crop_margin", DEFAULT_CROP_MARGIN))

    def preprocess(self, batch: list[Image.Image]) -> torch.Tensor:
        tensors = [self.transform(image_to_uint8(image)) for image in batch]  # each (3, S, S)
        return torch.stack(tensors).to(self.device)  # (B, 3, S, S)

    def postprocess(self, logits: torch.Tensor) -> list[Classification]:
        probabilities = torch.softmax(logits.float(), dim=1).cpu().tolist()  # (B, num_classes)
        results = []
        for row in probabilities:
            best = max(range(len(row)), key=row.__getitem__)
            results.append(Classification(self.labels[best], row[best], dict(zip(self.labels, row, strict=True))))
        return results

    def predict(self, batch: list[Image.Image]) -> list[Classification]:
        if not batch:
            return []
        with torch.inference_mode():
            return self.postprocess(self.network(self.preprocess(batch)))

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
