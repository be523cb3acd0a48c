"""``deepcanvas models quantize-embedder``: the face ResNet's int8 ONNX file, shipped only when LFW holds.

Calibration: chips of faces outside LFW (``../shared``'s natural face crops, each crop taken as its face's box
and aligned by the artifact's own landmarks, as the service aligns a detected face). The measure: LFW
verification accuracy at the artifact's shipped distance threshold, its flip averaging as served, on the
validation folds (pairs.txt folds 1-5, ``VALIDATION_FOLDS``): the int8 file ships when it drops by at most
0.5 points there. Folds 6-10 are the test folds: measured after the decision and reported beside it, never
used to make it. The faces are found by the store's detector, as ``deepcanvas eval identity`` finds them
(its cache is shared).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image

from models.artifact import load_artifact
from models.identity.align import extract_chip
from models.identity.collect import central_box, detector_boxes, load_rgb
from models.identity.lfw import Pair, read_pairs
from models.identity.onnx_predictor import OnnxFaceEmbedder
from models.identity.pipeline import FacePipeline, chip_array, flip_averaged
from models.identity.types import ONNX_FILE
from models.onnx_backend import Runtime
from models.quantize import CARD, QuantizationResult, quantize_artifact, repack_with

CALIBRATION_FACES = 300
VALIDATION_FOLDS = frozenset(range(5))  # pairs.txt's first five folds decide; the last five are reported


@dataclass(frozen=True)
class PairChips:
    """The aligned chips of the pairs whose two faces were found, and each pair's rows in ``chips``."""

    chips: np.ndarray  # (N, 3, 150, 150) float32 RGB in [0, 255]
    first: np.ndarray  # (P,) row of each pair's first face
    second: np.ndarray  # (P,) row of its second face
    same: np.ndarray  # (P,) bool
    validation: np.ndarray  # (P,) bool: the pair is in VALIDATION_FOLDS


def calibration_chips(
    pipeline: FacePipeline, faces: Path, count: int = CALIBRATION_FACES, seed: int = 0
) -> list[np.ndarray]:
    """``count`` face crops from ``faces`` (seeded), each aligned with the whole crop as its box; (1, 3, S, S) each."""
    paths = sorted(faces.rglob("*.jpg"))
    if not paths:
        raise typer.BadParameter(f"{faces}: no .jpg face crops to calibrate on")
    batches = []
    for path in random.Random(seed).sample(paths, min(count, len(paths))):
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        box = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        batches.append(chip_array([extract_chip(image, pipeline.points(image, box)[0])]))
    return batches


def lfw_pair_chips(pipeline: FacePipeline, root: Path, boxes: dict[str, list], pairs: list[Pair]) -> PairChips:
    """Align every face the pairs name (the box nearest the image centre, as the evaluation takes it)."""
    rows: dict[str, int] = {}
    chips: list[np.ndarray] = []
    for key in sorted({k for p in pairs for k in (p.first, p.second)}):
        image = load_rgb(root, key)
        box = central_box(boxes.get(key, []), image.shape)
        if box is not None:
            rows[key] = len(chips)
            chips.append(extract_chip(image, pipeline.points(image, np.array([box[:4]]))[0]))
    covered = [p for p in pairs if p.first in rows and p.second in rows]
    return PairChips(
        chip_array(chips),
        np.array([rows[p.first] for p in covered]),
        np.array([rows[p.second] for p in covered]),
        np.array([p.same for p in covered]),
        np.array([p.fold in VALIDATION_FOLDS for p in covered]),
    )


def verification_accuracies(
    forward: Callable[[np.ndarray], np.ndarray], data: PairChips, threshold: float, flip: bool
) -> dict[str, float]:
    """Accuracy at ``threshold`` on the validation pairs and on the test pairs, descriptors as served."""
    vectors = flip_averaged(data.chips, forward, flip)
    distances = np.linalg.norm(vectors[data.first] - vectors[data.second], axis=1)
    correct = (distances <= threshold) == data.same
    return {"validation": float(correct[data.validation].mean()), "test": float(correct[~data.validation].mean())}


def quantize_embedder(
    folder: Path, lfw_root: Path, faces: Path, detector: Path, cache: Path, log: Callable[[str], None]
) -> tuple[QuantizationResult, dict[str, dict[str, float]]]:
    """Write the int8 twin of ``resnet.onnx`` and ship it or not; also the test folds' accuracies, float and int8."""
    manifest = load_artifact(folder)
    pipeline = FacePipeline.from_artifact(folder, manifest)
    threshold = float(manifest.hyperparameters["thresholds"]["verify_distance"])
    pairs, _ = read_pairs(lfw_root)
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    boxes = detector_boxes(detector, lfw_root, keys, cache, log)
    data = lfw_pair_chips(pipeline, lfw_root, boxes, pairs)
    log(f"{len(data.chips)} LFW faces aligned; {len(data.same)} pairs ({int(data.validation.sum())} validation)")
    batches = calibration_chips(pipeline, faces)
    measured: dict[str, dict[str, float]] = {}

    def score(int8: bool) -> float:
        embedder = OnnxFaceEmbedder.from_artifact(folder, load_artifact(folder), "cpu", Runtime(int8=int8))
        name = "int8" if int8 else "float32"
        measured[name] = verification_accuracies(embedder.forward, data, threshold, pipeline.flip)
        log(f"{name}: {json.dumps(measured[name])}")
        return measured[name]["validation"]

    calibrated_on = (
        f"{len(batches)} face crops outside LFW (../shared's faces-gender/{faces.name}), aligned by the artifact's"
        " landmarks; measured on LFW pairs.txt folds 1-5 (validation), folds 6-10 reported as the test"
    )
    result = quantize_artifact(
        folder, [ONNX_FILE], lambda _: batches, score, "lfw_validation_folds_accuracy", calibrated_on=calibrated_on
    )
    note_test_folds(folder, measured)
    return result, measured


def note_test_folds(folder: Path, measured: dict[str, dict[str, float]]) -> None:
    """Add the test folds' accuracies (measured beside the decision, not used for it) to the card's int8 section."""
    card = folder / CARD
    if not card.is_file():
        return
    manifest = load_artifact(folder)  # verified before the card changes
    line = (
        "On the test folds (pairs.txt folds 6-10, not used for the decision): "
        + ", ".join(f"{name} {scores['test']:.4f}" for name, scores in measured.items())
        + "."
    )
    card.write_text(card.read_text().rstrip("\n") + "\n\n" + line + "\n")
    repack_with(folder, manifest, [CARD], {})


def quantize_command(
    folder: Annotated[Path, typer.Argument(help="A local face-embedder artifact with resnet.onnx", file_okay=False)],
    lfw_root: Annotated[Path, typer.Argument(help="LFW (deep-funneled) with pairs.txt", file_okay=False)],
    faces: Annotated[Path, typer.Argument(help="Face crops outside LFW to calibrate on", file_okay=False)],
    detector: Annotated[
        Path, typer.Option(help="The detector artifact (or model folder: its stable version) that finds LFW's faces")
    ] = Path("models/store/face-detector"),
    cache: Annotated[Path, typer.Option(help="Cached detections (shared with eval identity)")] = Path(
        "../data/identity"
    ),
) -> None:
    """Add an int8 resnet.onnx twin (NNCF) when LFW accuracy on the validation folds drops <= 0.5 points."""
    from models.identity.evaluate import resolve_stable

    result, measured = quantize_embedder(folder, lfw_root, faces, resolve_stable(detector), cache, typer.echo)
    typer.echo(f"{result.metric}: {json.dumps(measured)}; drop {result.drop_points:.2f} points")
    typer.echo(f"float time / int8 time: {json.dumps(result.speedups)}; {result.verdict}")
