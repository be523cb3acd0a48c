"""Per-call latency of the torch and the ONNX Runtime predictors on the same weights, side by side.

``python -m bench.backends [--repeats N] [--threads N]``: writes the starter artifacts (random weights:
latency does not depend on their values) into a temporary folder, exports them to ONNX, and times
``predict`` for detect at 640, classify on a batch of 8 crops, and AdaIN stylize at 512, on the CPU.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image

CASES = ("detect 640", "classify 8 crops", "stylize 512")


@dataclass(frozen=True)
class Timing:
    case: str
    torch_ms: float
    onnx_ms: float


def photo(width: int, height: int, seed: int) -> Image.Image:
    """Smooth colour noise: photo-like statistics without any file."""
    coarse = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


def median_ms(call: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds)


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


def predictor_pairs(folders: dict[str, tuple[Path, Any]], threads: int) -> dict[str, tuple[Any, Any]]:
    """(torch predictor, ONNX predictor) per task, built from the same artifact."""
    import torch

    from models.classifier.onnx_predictor import OnnxFaceClassifier
    from models.classifier.predictor import FaceClassifier
    from models.detector.onnx_predictor import OnnxFaceDetector
    from models.detector.predictor import FaceDetector
    from models.style.onnx_predictor import OnnxStyleTransfer
    from models.style.predictor import StyleTransfer

    cpu = torch.device("cpu")
    pairs = {}
    classes: list[tuple[str, Any, Any]] = [
        ("detect", FaceDetector, OnnxFaceDetector),
        ("classify", FaceClassifier, OnnxFaceClassifier),
        ("stylize", StyleTransfer, OnnxStyleTransfer),
    ]
    for task, torch_class, onnx_class in classes:
        folder, manifest = folders[task]
        pairs[task] = (
            torch_class.from_artifact(folder, manifest, cpu),
            onnx_class.from_artifact(folder, manifest, "cpu", threads),
        )
    return pairs


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
        pairs = predictor_pairs(exported_starters(Path(root)), threads)
        inputs = batches()
        timings = []
        for case, task in zip(CASES, ("detect", "classify", "stylize"), strict=True):
            torch_ms, onnx_ms = (median_ms(partial(p.predict, inputs[task]), repeats) for p in pairs[task])
            timings.append(Timing(case, torch_ms, onnx_ms))
    return timings


def machine() -> str:
    import onnxruntime
    import torch

    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} CPUs (load {load:.1f}), torch {torch.__version__} on {torch.get_num_threads()} threads, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def report(timings: list[Timing]) -> str:
    lines = [machine(), f"{'case':<18}{'torch ms':>10}{'onnx ms':>10}{'torch/onnx':>12}"]
    lines += [f"{t.case:<18}{t.torch_ms:>10.1f}{t.onnx_ms:>10.1f}{t.torch_ms / t.onnx_ms:>11.2f}x" for t in timings]
    return "\n".join(lines)


def run(
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per case and backend (after 2 warm-up calls)")] = 10,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads for both backends; 0 keeps each default")] = 0,
) -> None:
    """Median per-call latency of torch vs ONNX Runtime predictors (CPU, starter weights)."""
    typer.echo(report(measure(repeats, threads)))


def main() -> None:
    typer.run(run)


if __name__ == "__main__":
    main()
