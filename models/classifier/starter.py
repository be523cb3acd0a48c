"""An untrained classifier artifact: the right shapes and manifest, random weights (for tests and bootstrapping)."""

from __future__ import annotations

from pathlib import Path

import torch

from models.artifact import InputSpec, Manifest, Provenance, pack_artifact
from models.classifier.data import LABELS
from models.classifier.network import FaceNet
from models.classifier.predictor import ARCHITECTURE, DEFAULT_CROP_MARGIN, WEIGHTS_FILE
from models.classifier.transforms import IMAGENET_MEAN, IMAGENET_STD
from models.predictor import save_state

STARTER_WIDTHS = (32, 64, 128, 256)
STARTER_INPUT_SIZE = 64


def make_untrained_classifier(folder: Path, name: str = "face-gender", version: str = "v0", seed: int = 0) -> Manifest:
    """Write a randomly initialised FaceNet artifact (float16 safetensors) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        network = FaceNet(widths=STARTER_WIDTHS, num_classes=len(LABELS))
    save_state(network, folder / WEIGHTS_FILE, half=True)
    return pack_artifact(
        folder,
        name=name,
        version=version,
        task="classify",
        architecture=ARCHITECTURE,
        hyperparameters={"widths": list(STARTER_WIDTHS), "dropout": 0.2, "crop_margin": DEFAULT_CROP_MARGIN},
        input=InputSpec(size=STARTER_INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        labels=list(LABELS),
        provenance=Provenance(method=f"untrained: random initialisation (seed {seed})"),
    )
