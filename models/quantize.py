"""Post-training int8 quantization of an artifact's ONNX files (NNCF), shipped only when quality holds.

Generic over roles: the caller gives calibration inputs (arrays the network takes, drawn from the training
data) and a quality measure computed on its validation data through the served predictor (``score(int8)``:
higher is better, a fraction). ``quantize_artifact`` writes each file's int8 twin (``model.onnx`` ->
``model.int8.onnx``, ``models.onnx_backend.int8_file``), measures both, and ships the twins only when the
measure drops by at most ``max_drop`` (0.5 points): they become artifact files, hashed in the manifest,
``defaults.precision`` becomes ``int8`` (what ``DEEPCANVAS_WEIGHTS_PRECISION=auto`` runs) and
``metrics`` records both numbers. Otherwise the twins are deleted and the manifest is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import ArtifactError, Manifest, load_artifact
from models.onnx_backend import int8_file
from models.onnx_export import repack
from models.onnx_weights import load_with_fp32_weights

MAX_DROP = 0.005  # 0.5 points of the quality measure
CARD = "MODEL_CARD.md"


@dataclass(frozen=True)
class QuantizationResult:
    metric: str
    float_score: float
    int8_score: float
    shipped: bool
    files: list[str]

    @property
    def drop_points(self) -> float:
        return 100 * (self.float_score - self.int8_score)


def quantize_file(
    source: Path,
    target: Path,
    calibration: Sequence[np.ndarray],
    preset: str = "mixed",
    ignored_types: Sequence[str] = (),
) -> None:
    """NNCF's post-training quantization of the ONNX file ``source`` into ``target`` (QDQ int8).

    ``mixed``: symmetric weights, asymmetric activations (NNCF's advice for networks with ReLU and
    non-centred inputs); the statistics come from ``calibration`` (each one input batch). Operations of
    ``ignored_types`` stay float (e.g. a detection head's box decoding, whose outputs are pixel coordinates).
    """
    import nncf
    import onnx

    model = load_with_fp32_weights(source)  # NNCF quantizes float32 weights, not casts of float16 ones
    input_name = model.graph.input[0].name
    dataset = nncf.Dataset(list(calibration), lambda array: {input_name: np.ascontiguousarray(array, np.float32)})
    quantized = nncf.quantize(
        model,
        dataset,
        preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        subset_size=sum(len(batch) for batch in calibration),
        ignored_scope=nncf.IgnoredScope(types=list(ignored_types), validate=False) if ignored_types else None,
    )
    onnx.save(quantized, str(target))


def quantize_artifact(
    folder: Path,
    onnx_files: Sequence[str],
    calibration: Callable[[str], Sequence[np.ndarray]],
    score: Callable[[bool], float],
    metric: str,
    max_drop: float = MAX_DROP,
    ignored_types: Sequence[str] = (),
) -> QuantizationResult:
    """Write int8 twins of ``onnx_files``, measure ``score(False)`` (float) and ``score(True)`` (int8), ship or not.

    ``calibration(path)`` gives the input batches of the network in ``path``; ``score(int8)`` builds the served
    predictor on the float or the int8 files and returns the quality measure on the validation data.
    """
    manifest = load_artifact(folder)
    missing = [path for path in onnx_files if not any(entry.path == path for entry in manifest.files)]
    if missing:
        raise ArtifactError(f"{manifest.name}/{manifest.version}: no {', '.join(missing)}; export it first")
    twins = [int8_file(path) for path in onnx_files]
    for path, twin in zip(onnx_files, twins, strict=True):
        quantize_file(folder / path, folder / twin, calibration(path), ignored_types=ignored_types)
    # Listed (and hashed) before measuring, so the predictors open them as they would when served.
    measured = repack_with(folder, manifest, twins, {})
    float_score, int8_score = score(False), score(True)
    result = QuantizationResult(metric, float_score, int8_score, float_score - int8_score <= max_drop, twins)
    card = note_in_card(folder, result, max_drop)
    if result.shipped:
        update = {
            "defaults": {**measured.defaults, "precision": "int8"},
            "metrics": {**measured.metrics, f"float32_{metric}": float_score, f"int8_{metric}": int8_score},
        }
        repack_with(folder, measured, card, update)
        return result
    for twin in twins:
        (folder / twin).unlink()
    kept = measured.model_copy(update={"files": [e for e in measured.files if e.path not in twins]})
    repack_with(folder, kept, card, {})
    return QuantizationResult(metric, float_score, int8_score, False, [])


def note_in_card(folder: Path, result: QuantizationResult, max_drop: float) -> list[str]:
    """Append both numbers and the verdict to the artifact's model card; the files to re-hash (none without one)."""
    card = folder / CARD
    if not card.is_file():
        return []
    verdict = "shipped, the default on ONNX engines" if result.shipped else "not shipped"
    lines = [
        "",
        "## int8 (post-training quantization)",
        "",
        f"NNCF post-training quantization, calibrated on training data, into {', '.join(result.files)}: "
        f"{verdict} (the rule ships it when {result.metric} drops by at most {100 * max_drop:.1f} points; both "
        "measured through the served ONNX predictor on ONNX Runtime).",
        "",
        f"| weights | {result.metric} |",
        "|---|---|",
        f"| float32 | {result.float_score:.4f} |",
        f"| int8 | {result.int8_score:.4f} |",
        "",
        "Set `DEEPCANVAS_WEIGHTS_PRECISION=float32` to serve the float file instead.",
    ]
    card.write_text(card.read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    return [CARD]


def repack_with(folder: Path, manifest: Manifest, written: list[str], update: dict[str, Any]) -> Manifest:
    """``manifest`` with ``update`` applied and ``written`` listed, its ONNX details kept, re-packed and verified."""
    details = manifest.hyperparameters.get("onnx", {})
    return repack(folder, manifest.model_copy(update=update), written, details)
