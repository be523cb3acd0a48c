"""FaceDetector: the YOLO face detector behind ``POST /detect``, run by torch.

The network runs here; letterbox, NMS and the mapping back to each image are the shared, torch-free
``models.detector.pipeline`` (the ONNX predictor uses the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.artifact import ArtifactError, Manifest
from models.detector.network import build_yolo, decoded_predictions, fuse_for_inference, model_stride
from models.detector.pipeline import check_detector_manifest, detect, input_size, warmup_request
from models.detector.tiling import detect_tiled
from models.detector.types import WEIGHTS_FILE, Detection, DetectRequest
from models.torch_backend import load_state

__all__ = ["WEIGHTS_FILE", "DetectRequest", "Detection", "FaceDetector"]


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
        check_detector_manifest(manifest)
        cfg = manifest.hyperparameters.get("cfg")
        try:
            network = build_yolo(str(cfg), len(manifest.labels))
            network.load_state_dict(load_state(folder, manifest, WEIGHTS_FILE, device))
        except (ValueError, FileNotFoundError, RuntimeError) as error:  # bad or unknown cfg, weights' shapes
            raise ArtifactError(f"{manifest.name}/{manifest.version}: {error}") from error
        return cls(fuse_for_inference(network), manifest, device)

    def eval(self) -> FaceDetector:
        self.network.eval()
        return self

    def input_size(self, imgsz: int) -> int:
        """The network input side for a requested ``imgsz`` (a multiple of the stride)."""
        return input_size(imgsz, self.stride)

    @torch.inference_mode()
    def predict(self, batch: list[DetectRequest]) -> list[list[Detection]]:
        """Detections for each request, in order; large photos also as tiles; one forward per canvas shape."""
        return detect_tiled(
            batch, lambda r: r.imgsz, lambda views: detect(views, self.stride, self.labels, self.forward)
        )

    def forward(self, images: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) letterboxed images -> (B, 4 + nc, A) decoded head output, on the CPU for NMS."""
        pred = decoded_predictions(self.network, torch.from_numpy(images).to(self.device))  # (B, 4 + nc, A)
        return pred.float().cpu().numpy()

    def warmup(self) -> None:
        """One tiny predict, so the first real request does not pay for lazy initialisation."""
        self.predict([warmup_request(self.stride)])
