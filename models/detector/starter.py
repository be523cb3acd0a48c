"""A starter detector artifact: YOLOv5s with random weights, so the service runs before any training.

It finds nothing useful; it exists to exercise loading, batching and the API end to end.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.artifact import InputSpec, Manifest, Provenance, pack_artifact
from models.detector.network import build_yolo, model_stride
from models.detector.predictor import WEIGHTS_FILE
from models.predictor import save_state

CFG = "yolov5s.yaml"
LABELS = ["face"]
DEFAULTS = {"conf": 0.25, "iou": 0.45, "max_det": 300}
INPUT_SIZE = 640


def make_untrained_detector(folder: Path, name: str = "face-detector", version: str = "v0", seed: int = 0) -> Manifest:
    """Write a randomly initialised YOLOv5s (one class, float16 safetensors) and its manifest into ``folder``.

    ``folder`` should be empty: every file in it is listed in the manifest.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # seeds locally, leaves the caller's RNG alone
        torch.manual_seed(seed)
        network = build_yolo(CFG, len(LABELS))
    save_state(network, folder / WEIGHTS_FILE, half=True)
    return pack_artifact(
        folder,
        name=name,
        version=version,
        task="detect",
        architecture="yolov5s",
        hyperparameters={"cfg": CFG, "nc": len(LABELS), "stride": model_stride(network)},
        input=InputSpec(size=INPUT_SIZE),
        labels=LABELS,
        defaults=DEFAULTS,
        provenance=Provenance(method=f"untrained: random initialisation (seed {seed})"),
    )
