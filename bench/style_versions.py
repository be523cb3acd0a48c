"""Stylize latency of two AdaIN artifacts side by side, on the same photo and style, interleaved.

``python -m bench.style_versions OLD NEW [--side 512] [--repeats N] [--threads N] [--engine E] [--manner M]``:
builds both predictors (torch, or the ONNX files on ``--engine`` openvino/onnxruntime, what the service runs
by default), alternates their calls (so a busy machine slows both alike) and prints each median and the ratio
new / old. ``--manner`` asks NEW for that decoder-side matching strength (its default otherwise). The issue
behind it: a new style model must not make ``/stylize`` slower.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.backends import photo


def interleaved_ms(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up: lazy initialisation, allocator
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def main(
    old: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The AdaIN artifact served today")],
    new: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The candidate")],
    side: Annotated[int, typer.Option(min=32)] = 512,
    repeats: Annotated[int, typer.Option(min=3)] = 15,
    threads: Annotated[int, typer.Option(min=1)] = 2,
    engine: Annotated[str, typer.Option(help="torch, openvino or onnxruntime")] = "torch",
    manner: Annotated[float | None, typer.Option(min=0, max=1, help="NEW's manner (default: its own)")] = None,
) -> None:
    """Median stylize latency of OLD and NEW at SIDE px, and NEW / OLD."""
    import torch

    from models.artifact import load_artifact
    from models.onnx_backend import Runtime
    from models.style.onnx_predictor import OnnxStyleTransfer
    from models.style.predictor import StyleTransfer, StylizeRequest

    if engine not in ("torch", "openvino", "onnxruntime"):
        raise typer.BadParameter("--engine is torch, openvino or onnxruntime")
    torch.set_num_threads(threads)
    content, style = photo(side, side * 3 // 4, 1), (photo(side, side, 2),)
    requests = {
        "old": StylizeRequest(content, style, (1.0,), 1.0, False, side),
        "new": StylizeRequest(content, style, (1.0,), 1.0, False, side, manner),
    }
    predictors: dict[str, Any] = {}
    for name, folder in (("old", old), ("new", new)):
        manifest = load_artifact(folder)
        if engine == "torch":
            predictors[name] = StyleTransfer.from_artifact(folder, manifest, torch.device("cpu")).eval()
        else:
            runtime = Runtime(engine, threads=threads)  # type: ignore[arg-type]
            predictors[name] = OnnxStyleTransfer.from_artifact(folder, manifest, "cpu", runtime)
    calls: dict[str, Callable[[], Any]] = {
        name: partial(predictor.predict, [requests[name]]) for name, predictor in predictors.items()
    }
    samples = interleaved_ms(calls, repeats)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, folder in (("old", old), ("new", new)):
        typer.echo(f"{name}: {folder} median {medians[name]:.1f} ms over {repeats} calls at {side} px ({engine})")
    typer.echo(f"new / old: {medians['new'] / medians['old']:.3f}")


if __name__ == "__main__":
    typer.run(main)
