"""Per-image cost of a batch of n against single calls, interleaved, in-process, on the default engines.

``python -m bench.batch_cost [PHOTO]``: what the per-model batch limits (``app.settings.BATCH_LIMITS``) are
chosen from. Run it on a quiet machine; the photo defaults to the benchmark's portrait.
"""

from __future__ import annotations

import io
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image

from app.bench import load_photo
from app.main import open_artifact_store
from app.model_plans import default_plans
from app.settings import Settings
from models.detector.types import DetectRequest
from models.style.types import StylizeRequest


def build(settings: Settings, role: str) -> Any:
    plans = {plan.slot: plan for plan in default_plans(settings)}
    name, ref = settings.model_refs[role]  # type: ignore[index]
    folder, manifest = open_artifact_store(settings).fetch(name, ref)
    return plans[role].build(folder, manifest, settings.device)


def main(
    photo_path: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="A photo; default: the benchmark's portrait"),
    ] = None,
) -> None:
    """Per-image cost of micro-batches of each size against single calls, per model (quiet machine)."""
    settings = Settings()
    photo = Image.open(io.BytesIO(load_photo(photo_path))).convert("RGB")
    det, cls, sty, gal = (build(settings, role) for role in ("detector", "classifier", "style", "gallery"))
    style = gal.image(gal.names()[0])
    cases: dict[str, tuple[Any, Any, tuple[int, ...]]] = {
        "detector": (det, DetectRequest(photo, 0.35, 0.45, 300, 640, 24.0), (1, 2, 4, 8)),
        "classifier": (cls, photo.resize((160, 160)), (1, 4, 8, 16)),
        "style": (sty, StylizeRequest(photo, (style,), (1.0,), 1.0, False, 256), (1, 2, 4)),
    }
    for name, (predictor, item, sizes) in cases.items():
        predictor.predict([item])
        per_image: dict[int, list[float]] = {n: [] for n in sizes}
        for _ in range(8):
            for n in sizes:
                started = time.perf_counter()
                predictor.predict([item] * n)
                per_image[n].append((time.perf_counter() - started) * 1000 / n)
        print(name, {n: round(statistics.median(v), 2) for n, v in per_image.items()}, "ms per image")


if __name__ == "__main__":
    typer.run(main)
