"""FaceDetector: the YOLO face detector behind ``POST /detect``.

``letterbox -> network -> non_max_suppression -> unletterbox``. Requests that share an input size
run as one batched forward; each keeps its own confidence, IoU and ``max_det`` thresholds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.detector.boxes import Letterbox, letterbox, non_max_suppression, unletterbox
from models.detector.network import build_yolo, decoded_predictions, fuse_for_inference, model_stride
from models.predictor import load_state

WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class DetectRequest:
    """One image and its thresholds; ``imgsz`` is the network's square input side in pixels."""

    image: Image.Image
    conf: float
    iou: float
    max_det: int
    imgsz: int


@dataclass(frozen=True)
class Detection:
    """A box in original image pixels (x1, y1, x2, y2), its score in [0, 1] and its label."""

    box: tuple[float, float, float, float]
    score: float
    label: str


class FaceDetector:
    """YOLO detector built from an artifact; one instance serves one thread at a time."""

    def __init__(self, network: torch.nn.Module, manifest: Manifest, device: torch.device) -> None:
        assert manifest.labels, "a detector manifest needs at least one label"
        self.network = network.to(device).eval()
        self.manifest = manifest
        self.device = device
        self.labels = list(manifest.labels)
        self.stride = model_stride(network)

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> FaceDetector:
        """Rebuild the network the manifest describes, load its weights, and fuse conv + BN for inference."""
        nc = manifest.hyperparameters.get("nc", len(manifest.labels))
        if manifest.task != "detect" or not manifest.labels or nc != len(manifest.labels):
            raise ArtifactError(f"{manifest.name}/{manifest.version}: not a detector with one label per class")
        cfg = manifest.hyperparameters.get("cfg")
        try:
            network = build_yolo(str(cfg), len(manifest.labels))
            network.load_state_dict(load_state(folder, manifest, WEIGHTS_FILE, device))
        except (ValueError, FileNotFoundError, RuntimeError) as error:  # bad or unknown cfg, weights' shapes
            raise ArtifactError(f"{manifest.name}/{manifest.version}: {error}") from error
        return cls(fuse_for_inference(network), manifest, device)

    def input_size(self, imgsz: int) -> int:
        """The network input side for a requested ``imgsz``: rounded up to a multiple of the stride.

        The head's coarsest grid has one cell per ``stride`` pixels, so other sides would be cropped.
        """
        assert imgsz > 0, f"imgsz must be positive, got {imgsz}"
        return max(1, math.ceil(imgsz / self.stride)) * self.stride

    @torch.inference_mode()
    def predict(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """Detections for each request, in order; one forward per distinct input size."""
        results: dict[int, list[Detection]] = {}
        for size, indices in self.group_by_input_size(batch).items():
            group = [batch[i] for i in indices]
            results.update(zip(indices, self.predict_same_size(group, size), strict=True))
        return [results[i] for i in range(len(batch))]

    def group_by_input_size(self, batch: list[DetectRequest]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for index, request in enumerate(batch):
            groups[self.input_size(request.imgsz)].append(index)
        return groups

    def predict_same_size(self, group: list[DetectRequest], size: int) -> list[list[Detection]]:
        canvases, placements = zip(*(letterbox(request.image, size) for request in group), strict=True)
        images = torch.stack(canvases).to(self.device)  # (B, 3, size, size)
        pred = decoded_predictions(self.network, images)  # (B, 4 + nc, A)
        assert pred.shape[1] == 4 + len(self.labels), f"head gives {pred.shape[1] - 4} classes"
        return [
            self.postprocess(pred[i : i + 1], request, placement)
            for i, (request, placement) in enumerate(zip(group, placements, strict=True))
        ]

    def postprocess(self, pred: torch.Tensor, request: DetectRequest, placement: Letterbox) -> list[Detection]:
        """NMS with the request's own thresholds, then boxes back to the original image's pixels."""
        (kept,) = non_max_suppression(pred, request.conf, request.iou, request.max_det)  # (n, 6)
        boxes = unletterbox(kept[:, :4], placement).cpu().tolist()
        scores, classes = kept[:, 4].cpu().tolist(), kept[:, 5].long().cpu().tolist()
        return [
            Detection(box=(x1, y1, x2, y2), score=score, label=self.labels[label])
            for (x1, y1, x2, y2), score, label in zip(boxes, scores, classes, strict=True)
        ]

    def warmup(self) -> None:
        """One tiny predict, so the first real request does not pay for lazy initialisation."""
        image = Image.new("RGB", (2 * self.stride, 2 * self.stride), (114, 114, 114))
        self.predict([DetectRequest(image=image, conf=0.25, iou=0.45, max_det=1, imgsz=2 * self.stride)])
