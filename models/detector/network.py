"""The YOLO network, built from an ultralytics model config without weights.

``yolov5s.yaml`` gives ultralytics' anchor-free "YOLOv5su" (CSP backbone, PANet neck, decoupled DFL
head). In eval mode its forward returns the decoded head output first: (B, 4 + nc, A) with boxes as
cx, cy, w, h in input pixels and sigmoid class scores, which ``boxes.non_max_suppression`` reads.
Only the network is used here; pre- and post-processing are ours.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

# ultralytics reads these when imported: never reach the internet, never pip-install, and keep its
# settings file in a writable place (a container's home may be read-only).
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "deepcanvas-ultralytics"))

from PIL import Image
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils import patches as _ultralytics_patches

from models.artifact import check_safe_name

# Importing ultralytics replaces PIL.Image.open process-wide with a wrapper that, on any unidentified
# image, tries to pip-install pi-heif. Uploads are decoded by Pillow itself: undo that patch.
Image.open = _ultralytics_patches._image_open

CONFIG_SUFFIXES = (".yaml", ".yml")


def check_config_name(cfg: str) -> str:
    """Return ``cfg`` when it names a bundled ultralytics config; refuse paths and URLs.

    ultralytics downloads any config given as a URL, and the name comes from a manifest.
    """
    check_safe_name(cfg, "YOLO config")
    if not cfg.endswith(CONFIG_SUFFIXES):
        raise ValueError(f"YOLO config {cfg!r} must be a .yaml file name")
    return cfg


def build_yolo(cfg: str, nc: int) -> torch.nn.Module:
    """A randomly initialised ultralytics ``DetectionModel`` for ``nc`` classes (train mode, CPU).

    Its ``stride`` attribute holds the head strides (8, 16, 32 for YOLOv5); see ``model_stride``.
    """
    assert nc >= 1, f"nc must be >= 1, got {nc}"
    config = yaml_model_load(check_config_name(cfg))  # resolves the scale letter: yolov5s -> yolov5.yaml, "s"
    config["nc"] = nc  # set here rather than via nc= so ultralytics does not log an override
    return DetectionModel(config, ch=3, nc=nc, verbose=False)


def model_stride(network: torch.nn.Module) -> int:
    """The network's largest stride: input sides must be a multiple of it."""
    stride = getattr(network, "stride", None)
    assert isinstance(stride, torch.Tensor), "network has no stride tensor; build it with build_yolo"
    return int(stride.max().item())


def fuse_for_inference(network: torch.nn.Module) -> torch.nn.Module:
    """Fold each BatchNorm into its conv (ultralytics' ``fuse``): same eval outputs, fewer kernels.

    Do it after loading weights: the fused network's state dict no longer matches the artifact's.
    """
    assert isinstance(network, DetectionModel), f"expected a DetectionModel, got {type(network).__name__}"
    return network.fuse(verbose=False)


def decoded_predictions(network: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Run the eval-mode network on (B, 3, S, S) images; returns (B, 4 + nc, A)."""
    output = network(images)
    # The Detect head returns (decoded, raw features) in eval mode, the decoded tensor alone when exported.
    return output[0] if isinstance(output, tuple | list) else output


def prepare_for_export(network: torch.nn.Module) -> torch.nn.Module:
    """Put the fused network's Detect head in export mode, as ultralytics' own exporter does.

    ``export`` makes it return the decoded tensor alone; ``dynamic`` makes it build the anchor grid from
    the input's shape on every call, so the exported graph serves any batch and input side.
    """
    assert isinstance(network, DetectionModel), f"expected a DetectionModel, got {type(network).__name__}"
    layers: Any = network.model  # ultralytics' nn.Sequential of layers, the Detect head last
    layers[-1].export, layers[-1].dynamic = True, True
    return network
