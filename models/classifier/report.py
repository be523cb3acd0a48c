"""Per-slice evaluation and calibration of a classifier, and their sections of the model card.

Slices: ``lfw`` (the identity-disjoint LFW split) and, when the natural faces are given, ``faces`` (their
own disjoint split) with each labelled subset (``faces/crops``, ``faces/portraits``). Calibration is
measured on the validation split (both sources together), where the temperature is also fitted.
``main`` is ``deepcanvas eval classifier``: this module sits above ``evaluate.py`` (it imports it, never back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.artifact import load_artifact, repack_artifact
from models.classifier import calibration as C
from models.classifier.data import LABELS, Sample, scan_lfw, split_by_identity
from models.classifier.evaluate import classification_metrics, predict_logits, record_flip_tta, write_model_card
from models.classifier.faces import load_faces, slices
from models.classifier.pipeline import crop_margin, flip_tta, temperature
from models.classifier.predictor import FaceClassifier
from models.classifier.transforms import Transform

SPLITS = ("train", "val", "test")
SLICES_PNG = "confusion_slices.png"
RELIABILITY_PNG = "reliability.png"
SLICE_KEYS = ("n", "accuracy", "balanced_accuracy", *(f"recall_{label}" for label in LABELS), "roc_auc")


def evaluation_splits(
    lfw_root: Path,
    faces: tuple[Path, Path] | None,
    split: str,
    seed: int = 0,
    lfw_fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, list[Sample]]:
    """The named slices of one split: ``lfw``, then (with ``faces = (root, box cache)``) the natural faces'."""
    index = SPLITS.index(split)
    found = {"lfw": split_by_identity(scan_lfw(lfw_root), tuple(lfw_fractions), seed)[index]}
    if faces is not None:
        found |= slices(load_faces(faces[0], faces[1], seed)[index])
    return found


def slice_metrics(
    network: torch.nn.Module,
    splits: dict[str, list[Sample]],
    transform: Transform,
    flip: bool,
    temperature: float,
    crop_margin: float,
) -> dict[str, dict[str, Any]]:
    """Classification metrics of every non-empty slice, with the served preprocessing and temperature.

    Slices overlap (``faces`` holds ``faces/crops``): each face is predicted once.
    """
    unique = list({s.path: s for samples in splits.values() for s in samples}.values())
    logits = predict_logits(network, unique, transform, flip=flip, crop_margin=crop_margin) if unique else None
    row = {sample.path: i for i, sample in enumerate(unique)}
    results = {}
    for name, samples in splits.items():
        if samples and logits is not None:
            probs = C.view_probabilities(logits[[row[s.path] for s in samples]], temperature)
            results[name] = classification_metrics([s.label for s in samples], probs, LABELS)
    return results


def calibration_report(
    network: torch.nn.Module,
    val: list[Sample],
    transform: Transform,
    flip: bool,
    crop_margin: float,
    temperature: float | None = None,
) -> dict[str, Any]:
    """ECE and NLL on ``val`` before and after temperature scaling; ``temperature`` None fits it on ``val``."""
    logits = predict_logits(network, val, transform, flip=flip, crop_margin=crop_margin)  # (N, V, C)
    labels = np.array([s.label for s in val])
    fitted = C.fit_temperature(logits, labels) if temperature is None else temperature
    before, after = C.view_probabilities(logits, 1.0), C.view_probabilities(logits, fitted)
    return {
        "temperature": fitted,
        "n": int(labels.size),
        "ece_before": C.expected_calibration_error(before, labels),
        "ece_after": C.expected_calibration_error(after, labels),
        "nll_before": C.negative_log_likelihood(logits, labels, 1.0),
        "nll_after": C.negative_log_likelihood(logits, labels, fitted),
        "curves": {
            "T = 1": C.reliability_curve(before, labels),
            f"T = {fitted:.3f}": C.reliability_curve(after, labels),
        },
    }


def evaluate_report(
    artifact_folder: Path, lfw_root: Path, faces: tuple[Path, Path] | None, split: str = "test", seed: int = 0
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every slice of ``split`` and the validation calibration, as served; rewrites the model card (re-packed)."""
    manifest = load_artifact(artifact_folder)
    classifier = FaceClassifier.from_artifact(artifact_folder, manifest, torch.device("cpu"))
    fractions = manifest.hyperparameters.get("split_fractions", (0.8, 0.1, 0.1))
    args = (classifier.transform, flip_tta(manifest))
    margin = crop_margin(manifest)
    tests = evaluation_splits(lfw_root, faces, split, seed, fractions)
    results = slice_metrics(classifier.network, tests, *args, temperature(manifest), margin)
    val = [s for samples in evaluation_splits(lfw_root, faces, "val", seed, fractions).values() for s in samples]
    val = list({s.path: s for s in val}.values())  # the faces' slices repeat their samples: each face once
    calibration = calibration_report(classifier.network, val, *args, margin, temperature(manifest))
    extra = card_sections(artifact_folder, results, calibration, split)
    write_model_card(artifact_folder, {**results["lfw"], "split": split}, manifest, extra)
    repack_artifact(artifact_folder)  # the rewritten card and plots are hashed again
    return results, calibration


def flat_metrics(results: dict[str, dict[str, Any]], calibration: dict[str, Any]) -> dict[str, float]:
    """Manifest metrics: LFW's unprefixed (as before), every other slice prefixed, and the calibration."""
    metrics: dict[str, float] = {}
    for name, result in results.items():
        prefix = "" if name == "lfw" else name.replace("/", "_") + "_"
        metrics |= {prefix + key: float(result[key]) for key in SLICE_KEYS if key in result and key != "n"}
        metrics[prefix + "n_test" if not prefix else prefix + "n"] = float(result["n"])
    keys = ("temperature", "ece_before", "ece_after")
    return metrics | {f"val_{key}" if key != "temperature" else key: float(calibration[key]) for key in keys}


def card_sections(
    folder: Path, results: dict[str, dict[str, Any]], calibration: dict[str, Any], split: str = "test"
) -> list[str]:
    """Markdown for the per-slice table, the confusion matrices and the reliability diagram (PNGs beside it)."""
    header = "| slice | " + " | ".join(SLICE_KEYS) + " |"
    rows = [header, "|" + "---|" * (len(SLICE_KEYS) + 1)]
    for name, result in results.items():
        cells = [str(result[k]) if k == "n" else f"{result[k]:.4f}" if k in result else "-" for k in SLICE_KEYS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    plot_confusion_grid(results, folder / SLICES_PNG)
    C.plot_reliability(calibration["curves"], folder / RELIABILITY_PNG)
    return [
        "",
        f"## Metrics per slice ({split} split; scores temperature-scaled as served)",
        "",
        "`lfw`: identity-disjoint LFW3D split. `faces`: the natural faces' own split (near-duplicate pictures",
        "never straddle splits); `faces/crops`: tight celebrity crops used whole; `faces/portraits`: stock",
        "portraits of all ages, cropped by the teacher detector's box with the served margin. Age band and",
        "ethnicity are not labelled, so they are not reported.",
        "",
        *rows,
        "",
        f"![confusion matrices per slice]({SLICES_PNG})",
        "",
        f"## Calibration (validation split, {calibration['n']} faces)",
        "",
        f"Temperature scaling with T = {calibration['temperature']:.4f} (fitted on this split):",
        f"expected calibration error {calibration['ece_before']:.4f} before, {calibration['ece_after']:.4f} after",
        f"(15 equal-width bins of the score); negative log-likelihood {calibration['nll_before']:.4f} before,",
        f"{calibration['nll_after']:.4f} after. The `score` of a face is its label's probability and can be",
        "thresholded (`min_score` on `/classify`).",
        "",
        f"![reliability diagram]({RELIABILITY_PNG})",
    ]


def plot_confusion_grid(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, grid = plt.subplots(1, len(results), figsize=(3.0 * len(results), 3.0), dpi=110, squeeze=False)
    for axes, (name, result) in zip(grid[0], results.items(), strict=True):
        counts = np.asarray(result["confusion_matrix"])
        axes.imshow(counts, cmap="Blues")
        for (row, col), value in np.ndenumerate(counts):
            axes.text(
                col, row, str(value), ha="center", va="center", color="white" if value > counts.max() / 2 else "k"
            )
        axes.set(xticks=range(len(LABELS)), yticks=range(len(LABELS)), xticklabels=LABELS, yticklabels=LABELS)
        axes.set(xlabel="predicted", ylabel="true", title=name)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(
    artifact_folder: Path,
    data_root: Path,
    split: str = "test",
    seed: int = 0,
    record_flip: bool = False,
    faces_root: Path | None = None,
    face_boxes: Path | None = None,
) -> None:
    """Evaluate an artifact on one split, print the metrics and (re)write its model card beside it.

    With ``--faces-root`` and ``--face-boxes`` the card also gets the natural faces' slices, the confusion
    matrices per slice and the calibration (reliability diagram) on the validation split.
    ``--record-flip`` instead decides flip test-time augmentation on the validation split and, when it helps,
    records it in the manifest with the test metrics it is served with.
    """
    if record_flip:
        print(json.dumps(record_flip_tta(artifact_folder, data_root, seed), indent=2))
        return
    faces = (faces_root, face_boxes) if faces_root is not None and face_boxes is not None else None
    results, calibration = evaluate_report(artifact_folder, data_root, faces, split, seed)
    print(json.dumps({name: {k: v for k, v in r.items() if k != "roc"} for name, r in results.items()}, indent=2))
    print(json.dumps({k: v for k, v in calibration.items() if k != "curves"}, indent=2))


if __name__ == "__main__":
    import typer

    typer.run(main)
