"""``deepcanvas eval identity``: the LFW protocol through our detector, landmarks and embedder.

Verification on the usable pairs of ``pairs.txt`` (10-fold and at the artifact's threshold), ROC, the pairs
where detection failed; identification (rank-1, and the open-set table by gallery size, thresholds chosen on
the ``choose`` half of identities and reported on the ``report`` half). With ``calibrate`` the box mapping,
flip averaging, thresholds, metrics and the model card are written into the artifact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.artifact import load_artifact, repack_artifact
from models.identity.boxes import measure_mapping
from models.identity.card import plot_roc, write_card
from models.identity.collect import descriptors, detector_boxes, hog_boxes, load_rgb
from models.identity.identification import identification_report, shipped_thresholds
from models.identity.lfw import image_keys, image_path, read_pairs
from models.identity.low_light import low_light
from models.identity.metrics import roc, ten_fold
from models.identity.pipeline import FacePipeline, normalise

Progress = Callable[[str], None]
HOG_EVERY = 4


def verification(vectors: np.ndarray, found: np.ndarray, index: dict[str, int], root: Path) -> dict[str, Any]:
    """Pairs metrics for one set of descriptors; uncovered pairs (a face not found) are listed and left out."""
    pairs, total = read_pairs(root)
    covered = [p for p in pairs if found[index[p.first]] and found[index[p.second]]]
    first = vectors[[index[p.first] for p in covered]]
    second = vectors[[index[p.second] for p in covered]]
    distances = np.linalg.norm(first - second, axis=1)
    same = np.array([p.same for p in covered])
    folds = np.array([p.fold for p in covered])
    return {
        "pairs_listed": total,
        "pairs_usable": len(pairs),
        "pairs_covered": len(covered),
        "uncovered": [f"{p.first} {p.second}" for p in pairs if p not in covered],
        "ten_fold": ten_fold(distances, same, folds),
        "distances": distances,
        "same": same,
        "covered_pairs": covered,
    }


def accuracy_at(result: dict[str, Any], threshold: float) -> dict[str, float]:
    """Accuracy at a fixed distance threshold, on the covered pairs and counting uncovered pairs as errors."""
    correct = int(((result["distances"] <= threshold) == result["same"]).sum())
    return {
        "accuracy": correct / result["pairs_covered"],
        "accuracy_all_usable": correct / result["pairs_usable"],
    }


def evaluate_identity(
    artifact: Path,
    root: Path,
    detector: Path,
    out: Path,
    cache: Path,
    calibrate: bool,
    log: Progress,
    command: str = "",
) -> dict[str, Any]:
    manifest = load_artifact(artifact)
    detector = resolve_stable(detector)
    keys = image_keys(root)
    detections = detector_boxes(detector, root, keys, cache, log)
    report: dict[str, Any] = {"images": len(keys), "detector": str(detector)}
    if calibrate:
        hog = hog_boxes(root, keys[::HOG_EVERY], cache, log)  # a quarter of the images: enough for 4 numbers
        shapes = {key: Image.open(image_path(root, key)).size[::-1] for key in keys}
        pipeline = FacePipeline.from_artifact(artifact, manifest)
        report["box_mapping"] = measure_mapping(pipeline, lambda k: load_rgb(root, k), shapes, detections, hog)
        log(f"box mapping: {json.dumps(report['box_mapping'])}")
        hyperparameters = {**manifest.hyperparameters, "box_mapping": report["box_mapping"]["box_mapping"]}
        manifest = repack_artifact(artifact, hyperparameters=hyperparameters)
    data = descriptors(artifact, manifest, root, detections, cache, log)
    index = {str(key): i for i, key in enumerate(data["keys"])}
    found = data["found"]
    variants = {"plain": normalise(data["raw"]), "flip_average": normalise(data["raw"] + data["mirrored"])}
    results = {name: verification(vectors, found, index, root) for name, vectors in variants.items()}
    flip = results["flip_average"]["ten_fold"]["accuracy"] > results["plain"]["ten_fold"]["accuracy"]
    if not calibrate:
        flip = bool(manifest.hyperparameters.get("flip_average"))
    chosen = results["flip_average" if flip else "plain"]
    vectors = variants["flip_average" if flip else "plain"]
    verify_distance = round(float(np.mean(chosen["ten_fold"]["thresholds"])), 4)
    if not calibrate:
        verify_distance = float(manifest.hyperparameters["thresholds"]["verify_distance"])
    shipped = None if calibrate else manifest.hyperparameters["thresholds"]["identify_similarity"]
    identification = identification_report(vectors, found, [str(k) for k in data["keys"]], shipped)
    thresholds = (
        shipped_thresholds(identification, verify_distance) if calibrate else manifest.hyperparameters["thresholds"]
    )
    curve = roc(chosen["distances"], chosen["same"])
    report |= {
        "verification": {
            name: {k: v for k, v in result.items() if k not in ("distances", "same", "covered_pairs")}
            for name, result in results.items()
        },
        "flip_average": flip,
        "verify_distance": verify_distance,
        "at_shipped_threshold": accuracy_at(chosen, verify_distance),
        "roc_auc": curve["auc"],
        "detection_failures": int((~found).sum()),
        "identification": identification,
        "thresholds": thresholds,
        "limits": limits(chosen, data, index),
        "low_light": low_light(artifact, manifest, root, chosen["covered_pairs"], detections, verify_distance),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "identity-report.json").write_text(json.dumps(report, indent=2, default=float))
    plot_roc(curve, chosen, verify_distance, out / "roc.png")
    if calibrate:
        metrics = summary_metrics(report)
        hyperparameters = {
            **manifest.hyperparameters,
            "flip_average": flip,
            "thresholds": thresholds,
            "calibration": "measured: deepcanvas eval identity --calibrate (LFW; see MODEL_CARD.md)",
        }
        repack_artifact(artifact, hyperparameters=hyperparameters, metrics=metrics)
        write_card(artifact, report, out / "roc.png", command)
        repack_artifact(artifact)  # the card and the ROC picture are listed and hashed
    return report


def resolve_stable(folder: Path) -> Path:
    """A model's folder (with ``aliases.json``) resolves to its ``stable`` version; a version folder stays."""
    aliases = folder / "aliases.json"
    return folder / json.loads(aliases.read_text())["stable"] if aliases.is_file() else folder


def summary_metrics(report: dict[str, Any]) -> dict[str, float]:
    flip = "flip_average" if report["flip_average"] else "plain"
    verification = report["verification"][flip]
    ident = report["identification"]
    return {
        "lfw_pairs_covered": float(verification["pairs_covered"]),
        "lfw_pairs_usable": float(verification["pairs_usable"]),
        "lfw_accuracy_10fold": verification["ten_fold"]["accuracy"],
        "lfw_accuracy_10fold_std": verification["ten_fold"]["std"],
        "lfw_accuracy_at_threshold": report["at_shipped_threshold"]["accuracy"],
        "lfw_roc_auc": report["roc_auc"],
        "lfw_detection_failures": float(report["detection_failures"]),
        "rank1": ident["rank1"]["accuracy"],
        "five_people_named_correctly": ident["five_by_three"]["named_correctly"],
        "five_people_others_null": ident["five_by_three"]["others_null"],
    }


def limits(result: dict[str, Any], data: dict[str, np.ndarray], index: dict[str, int]) -> dict[str, Any]:
    """Accuracy at the 10-fold thresholds' mean, by head turn (yaw proxy from the 5 points)."""
    points = data["landmarks"]
    eyes_left, eyes_right, nose = points[:, 0:2].mean(1), points[:, 2:4].mean(1), points[:, 4]
    middle = (eyes_left + eyes_right) / 2
    spread = np.linalg.norm(eyes_left - eyes_right, axis=1).clip(1e-6)
    turn = np.abs(nose[:, 0] - middle[:, 0]) / spread  # 0 frontal; grows as the head turns
    pair_turn = np.array([max(turn[index[p.first]], turn[index[p.second]]) for p in result["covered_pairs"]])
    threshold = float(np.mean(result["ten_fold"]["thresholds"]))
    correct = (result["distances"] <= threshold) == result["same"]
    bins = [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 10.0)]
    return {
        "by_turn": [
            {
                "turn": f"{low:.1f}-{high:.1f}" if high < 10 else f">= {low:.1f}",
                "pairs": int(((pair_turn >= low) & (pair_turn < high)).sum()),
                "accuracy": float(correct[(pair_turn >= low) & (pair_turn < high)].mean())
                if ((pair_turn >= low) & (pair_turn < high)).any()
                else None,
            }
            for low, high in bins
        ]
    }
