"""ONNX Runtime sessions for the ONNX predictors: providers from a device string, tuned session options.

Torch-free: with every role on the ONNX backend, the service runs without torch installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.artifact import ArtifactError, Manifest

EXPORT_HINT = "run `deepcanvas models export <artifact folder>` to add the ONNX files"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
Provider = str | tuple[str, dict[str, Any]]


def execution_providers(device: str) -> list[Provider]:
    """ONNX Runtime providers for a settings device (``cpu``, ``cuda``, ``cuda:N``); refuses what is unavailable."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return [CPU_PROVIDER]
    if kind == "cuda":
        if CUDA_PROVIDER not in ort.get_available_providers():
            raise ArtifactError(
                f"device {device!r} requested but onnxruntime {ort.__version__} has no {CUDA_PROVIDER} "
                "(install onnxruntime-gpu)"
            )
        return [(CUDA_PROVIDER, {"device_id": int(index or 0)}), CPU_PROVIDER]
    raise ArtifactError(f"device {device!r} is not supported by the ONNX backend: use cpu, cuda or cuda:N")


def session_options(threads: int = 0) -> ort.SessionOptions:
    """All graph optimisations; ``threads`` intra-op threads, 0 keeps onnxruntime's default (one per core)."""
    assert threads >= 0, f"threads must be >= 0, got {threads}"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return options


def open_session(folder: Path, manifest: Manifest, path: str, device: str, threads: int = 0) -> ort.InferenceSession:
    """A session for the ONNX file ``path`` of a verified artifact; ``ArtifactError`` when it lacks one."""
    where = f"{manifest.name}/{manifest.version}"
    if not any(entry.path == path for entry in manifest.files):
        raise ArtifactError(f"{where}: the artifact has no {path}; {EXPORT_HINT}")
    providers = execution_providers(device)
    try:
        session = ort.InferenceSession(str(folder / path), session_options(threads), providers=providers)
    except Exception as error:  # onnxruntime's own error types derive from Exception only
        raise ArtifactError(f"{where}: onnxruntime cannot load {path}: {error}") from error
    if device != "cpu" and CUDA_PROVIDER not in session.get_providers():
        # onnxruntime falls back to the CPU silently when the CUDA libraries fail to load
        raise ArtifactError(f"{where}: {CUDA_PROVIDER} failed to start for {path}; check the CUDA installation")
    if len(session.get_inputs()) != 1:
        raise ArtifactError(f"{where}: {path} must take exactly one input")
    return session


def run_session(session: ort.InferenceSession, array: np.ndarray) -> np.ndarray:
    """The first output of ``session`` for its single input ``array`` (float32, contiguous)."""
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(array, dtype=np.float32)}
    return np.asarray(session.run(None, feed)[0])


def onnx_metadata(manifest: Manifest) -> dict[str, Any]:
    """What the exporter recorded in ``hyperparameters["onnx"]`` (empty when the artifact was never exported)."""
    metadata = manifest.hyperparameters.get("onnx", {})
    return metadata if isinstance(metadata, dict) else {}
