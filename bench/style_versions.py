"""Stylize latency of two AdaIN artifacts side by side, on the same photo and style, interleaved.

``python -m bench.style_versions OLD NEW [--side 512] [--repeats N] [--threads N]``: builds both torch
predictors, alternates their calls (so a busy machine slows both alike) and prints each median and the
ratio new / old. The issue behind it: a new style model must not make ``/stylize`` slower.
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
) -> None:
    """Median stylize latency of OLD and NEW at SIDE px, and NEW / OLD."""
    import torch

    from models.artifact import load_artifact
    from models.style.predictor import StyleTransfer, StylizeRequest

    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    request = StylizeRequest(photo(side, side * 3 // 4, 1), (photo(side, side, 2),), (1.0,), 1.0, False, side)
    predictors = {
        name: StyleTransfer.from_artifact(p, load_artifact(p), cpu).eval() for name, p in (("old", old), ("new", new))
    }
    calls: dict[str, Callable[[], Any]] = {
        name: partial(predictor.predict, [request]) for name, predictor in predictors.items()
    }
    samples = interleaved_ms(calls, repeats)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, folder in (("old", old), ("new", new)):
        typer.echo(f"{name}: {folder} median {medians[name]:.1f} ms over {repeats} calls at {side} px")
    typer.echo(f"new / old: {medians['new'] / medians['old']:.3f}")


if __name__ == "__main__":
    typer.run(main)
