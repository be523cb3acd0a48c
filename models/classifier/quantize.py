"""``deepcanvas models quantize-classifier``: the classifier's int8 ONNX file, calibrated on its training split
and shipped only when the balanced accuracy on its validation split drops by at most 0.5 points.

Both numbers are measured through the served ONNX predictor (ONNX Runtime, the same preprocessing as
``/classify``) on the LFW validation split the training used (identity-disjoint, the manifest's fractions).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from models.artifact import load_artifact
from models.classifier.data import Sample
from models.classifier.metrics import balanced_accuracy
from models.classifier.onnx_predictor import OnnxFaceClassifier
from models.classifier.pipeline import check_classifier_manifest, preprocess
from models.classifier.types import ONNX_FILE
from models.onnx_backend import Runtime
from models.quantize import QuantizationResult, quantize_artifact

CALIBRATION_IMAGES = 300
BATCH = 64


def load_images(samples: Sequence[Sample]) -> list[Image.Image]:
    images = []
    for sample in samples:
        with Image.open(sample.path) as image:
            images.append(image.convert("RGB"))
    return images


def served_balanced_accuracy(folder: Path, samples: Sequence[Sample], images: list[Image.Image], int8: bool) -> float:
    classifier = OnnxFaceClassifier.from_artifact(folder, load_artifact(folder), "cpu", Runtime(int8=int8))
    predicted = []
    for start in range(0, len(images), BATCH):
        results = classifier.predict(images[start : start + BATCH])
        predicted += [classifier.labels.index(result.label) for result in results]
    return balanced_accuracy([s.label for s in samples], predicted, len(classifier.labels))


def quantize_classifier(folder: Path, data_root: Path, seed: int = 0) -> QuantizationResult:
    from models.classifier.evaluate import split_samples

    manifest = load_artifact(folder)
    spec = check_classifier_manifest(manifest)
    train = split_samples(manifest, data_root, "train", seed)
    calibration_samples = random.Random(seed).sample(train, min(CALIBRATION_IMAGES, len(train)))
    calibration_images = load_images(calibration_samples)
    batches = [preprocess([image], spec) for image in calibration_images]  # each (1, 3, S, S)
    val = split_samples(manifest, data_root, "val", seed)
    val_images = load_images(val)
    return quantize_artifact(
        folder,
        [ONNX_FILE],
        lambda _: batches,
        lambda int8: served_balanced_accuracy(folder, val, val_images, int8),
        "val_balanced_accuracy",
    )


def quantize_command(
    folder: Annotated[Path, typer.Argument(help="A local classifier artifact with model.onnx", file_okay=False)],
    data_root: Annotated[Path, typer.Argument(help="The LFW gender data the classifier was trained on")],
    seed: Annotated[int, typer.Option(help="The training's split seed")] = 0,
) -> None:
    """Add an int8 model.onnx twin (NNCF) when validation balanced accuracy drops <= 0.5 points."""
    result = quantize_classifier(folder, data_root, seed)
    summary = {"float32": result.float_score, "int8": result.int8_score, "drop_points": result.drop_points}
    typer.echo(f"{result.metric}: {json.dumps(summary)}; {result.verdict}")
