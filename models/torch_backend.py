"""The torch side of the predictor contract: safetensors weights as tensors, and devices from settings.

Kept apart from ``models.predictor`` so that the contract, and every ONNX predictor, imports without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from models.artifact import ArtifactError, Manifest


def load_state(folder: Path, manifest: Manifest, path: str, device: torch.device) -> dict[str, torch.Tensor]:
    """Load a safetensors file listed in ``manifest`` as float32 tensors on ``device``."""
    manifest.file(path)  # refuses files the manifest does not list
    try:
        state = load_file(str(folder / path), device="cpu")
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ArtifactError(f"{manifest.name}/{manifest.version}: cannot read {path}: {error}") from error
    return {key: value.float().to(device) for key, value in state.items()}


def save_state(module: torch.nn.Module, path: Path, half: bool = True) -> None:
    """Save a module's state dict as safetensors, in float16 by default (starter weights stay small)."""
    state: dict[str, Any] = {}
    for key, value in module.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        state[key] = tensor.half() if half and tensor.is_floating_point() else tensor
    save_file(state, str(path))


def resolve_device(name: str) -> torch.device:
    """A torch device from a settings string; falls back to nothing, refuses what is unavailable."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArtifactError(f"device {name!r} requested but CUDA is not available")
    return device
