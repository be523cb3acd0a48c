"""Which engine runs each model: the one its setting names, or with ``auto`` the fastest one installed
that the artifact can run on (OpenVINO, else ONNX Runtime, else torch), and why.

The choice is made per artifact, when it loads: a store whose detector has no ONNX file runs that detector
on torch and says so, while the other models still run on OpenVINO. Nothing falls back silently: each
choice carries a reason that the start-up log and ``GET /models`` show.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import Literal

from models.artifact import Manifest
from models.onnx_backend import EXPORT_HINT, Engine, int8_file

EngineName = Literal["openvino", "onnxruntime", "torch", "none"]
WeightsPrecision = Literal["float32", "int8", "none"]
AUTO_ORDER: tuple[Engine, ...] = ("openvino", "onnxruntime")


@dataclass(frozen=True)
class EngineChoice:
    """The engine one slot runs on, the precision of the weights it runs, and why (one line, for people)."""

    engine: EngineName
    reason: str
    precision: WeightsPrecision = "float32"


@cache
def installed(package: str) -> bool:
    """Whether ``package`` can be imported here (without importing it: torch alone takes seconds)."""
    return importlib.util.find_spec(package) is not None


def listed(manifest: Manifest, path: str) -> bool:
    return any(entry.path == path for entry in manifest.files)


def int8_default(manifest: Manifest, onnx_files: tuple[str, ...], engine: Engine) -> bool:
    """Whether ``engine`` runs the artifact's int8 ONNX files by default.

    The artifact must ship them and its manifest make them the default (``defaults.precision``); where the
    manifest names the engines on which the int8 files measured faster (``defaults.int8_engines``, written
    by the quantize commands), only those.
    """
    shipped = bool(onnx_files) and all(listed(manifest, int8_file(path)) for path in onnx_files)
    faster = manifest.defaults.get("int8_engines")
    return shipped and manifest.defaults.get("precision") == "int8" and (faster is None or engine in faster)


def choose_engine(
    backend: str, manifest: Manifest, onnx_files: tuple[str, ...], setting: str, allow_int8: bool = True
) -> EngineChoice:
    """The engine for ``manifest`` under ``backend`` (auto, torch, onnx or openvino), and the reason.

    ``onnx_files`` are the files the role's ONNX predictor opens; ``setting`` names the environment variable
    that chose ``backend`` (for the reason). ``allow_int8`` is false when the settings ask for float weights.
    """

    def precision(engine: Engine) -> WeightsPrecision:
        return "int8" if allow_int8 and int8_default(manifest, onnx_files, engine) else "float32"

    if backend == "torch":
        return EngineChoice("torch", f"{setting}=torch")
    if backend in ("onnx", "openvino"):
        engine: Engine = "openvino" if backend == "openvino" else "onnxruntime"
        return EngineChoice(engine, f"{setting}={backend}", precision(engine))
    missing = [path for path in onnx_files if not listed(manifest, path)]
    if missing:
        return EngineChoice("torch", f"torch: the artifact has no {', '.join(missing)} ({EXPORT_HINT})")
    for candidate in AUTO_ORDER:
        if installed(candidate):
            return EngineChoice(candidate, f"auto: the fastest engine installed ({candidate})", precision(candidate))
    return EngineChoice("torch", "torch: neither openvino nor onnxruntime is installed")
