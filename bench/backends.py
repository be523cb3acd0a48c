"""Per-call latency of the torch, ONNX Runtime and OpenVINO predictors on the same weights, side by side.

``python -m bench.backends [--repeats N] [--threads N]``: writes the starter artifacts (random weights:
latency does not depend on their values) into a temporary folder, exports them to ONNX, and times
``predict`` for detect at 640, classify on a batch of 8 crops, and AdaIN stylize at 512, on the CPU:
torch, ONNX Runtime, OpenVINO at f32, and OpenVINO at its default precision (bf16 on CPUs with AMX).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image

CASES = ("detect 640", "classify 8 crops", "stylize 512")
BACKENDS = ("torch", "onnxruntime", "openvino-f32", "openvino")


@dataclass(frozen=True)
class Timing:
    case: str
    ms: dict[str, float]  # per backend


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour noise: photo-like statistics without any file."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def median_ms(call: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    from app.bench import time_calls

    return statistics.median(time_calls(call, repeats, warmup))


def exported_starters(root: Path) -> dict[str, tuple[Path, Any]]:
    from models.artifact import load_artifact
    from models.onnx_export import export_artifact
    from models.starter import write_untrained_store

    folders: dict[str, tuple[Path, Any]] = {}
    for manifest in write_untrained_store(root):
        folder = root / manifest.name / manifest.version
        if manifest.task != "style-gallery":
            export_artifact(folder)
        folders[manifest.task] = (folder, load_artifact(folder))
    return folders


def predictor_sets(folders: dict[str, tuple[Path, Any]], threads: int) -> dict[str, dict[str, Any]]:
    """Per task, one predictor per backend (``BACKENDS``), all built from the same artifact."""
    import torch

    from models.classifier.onnx_predictor import OnnxFaceClassifier
    from models.classifier.predictor import FaceClassifier
    from models.detector.onnx_predictor import OnnxFaceDetector
    from models.detector.predictor import FaceDetector
    from models.onnx_backend import Runtime
    from models.style.onnx_predictor import OnnxStyleTransfer
    from models.style.predictor import StyleTransfer

    cpu = torch.device("cpu")
    runtimes = {
        "onnxruntime": Runtime("onnxruntime", threads),
        "openvino-f32": Runtime("openvino", threads, "f32"),
        "openvino": Runtime("openvino", threads, "auto"),
    }
    sets = {}
    classes: list[tuple[str, Any, Any]] = [
        ("detect", FaceDetector, OnnxFaceDetector),
        ("classify", FaceClassifier, OnnxFaceClassifier),
        ("stylize", StyleTransfer, OnnxStyleTransfer),
    ]
    for task, torch_class, onnx_class in classes:
        folder, manifest = folders[task]
        sets[task] = {"torch": torch_class.from_artifact(folder, manifest, cpu)}
        sets[task] |= {name: onnx_class.from_artifact(folder, manifest, "cpu", rt) for name, rt in runtimes.items()}
    return sets


def batches() -> dict[str, list[Any]]:
    from models.detector.types import DetectRequest
    from models.style.types import StylizeRequest

    return {
        "detect": [DetectRequest(photo(1280, 720, 0), conf=0.25, iou=0.45, max_det=300, imgsz=640)],
        "classify": [photo(96 + 8 * i, 112, i) for i in range(8)],
        "stylize": [StylizeRequest(photo(768, 512, 1), (photo(256, 256, 2),), (1.0,), 1.0, False, 512)],
    }


def measure(repeats: int, threads: int) -> list[Timing]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as root:
        sets = predictor_sets(exported_starters(Path(root)), threads)
        inputs = batches()
        timings = []
        for case, task in zip(CASES, ("detect", "classify", "stylize"), strict=True):
            ms = {name: median_ms(partial(p.predict, inputs[task]), repeats) for name, p in sets[task].items()}
            timings.append(Timing(case, ms))
    return timings


def machine() -> str:
    import onnxruntime
    import openvino
    import torch

    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs (load {load:.1f}), torch {torch.__version__} on {torch.get_num_threads()} threads, "
        f"onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}"
    )


def report(timings: list[Timing]) -> str:
    """A markdown table: median ms per backend, and how many times faster than torch each is."""
    faster = [b for b in BACKENDS if b != "torch"]
    header = ["case", *(f"{b} ms" for b in BACKENDS), *(f"torch / {b}" for b in faster)]
    lines = [machine(), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for t in timings:
        cells = [t.case, *(f"{t.ms[b]:.1f}" for b in BACKENDS), *(f"{t.ms['torch'] / t.ms[b]:.2f}x" for b in faster)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per case and backend (after 2 warm-up calls)")] = 10,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads for both backends; 0 keeps each default")] = 0,
) -> None:
    """Median per-call latency of the torch, ONNX Runtime and OpenVINO predictors (CPU, starter weights)."""
    typer.echo(report(measure(repeats, threads)))


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    main()
