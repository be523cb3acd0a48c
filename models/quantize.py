"""Post-training int8 quantization of an artifact's ONNX files (NNCF), shipped only when quality holds.

Generic over roles: the caller gives calibration inputs (arrays the network takes, drawn from the training
data) and a quality measure computed on its validation data through the served predictor (``score(int8)``:
higher is better, a fraction). ``quantize_artifact`` writes each file's int8 twin (``model.onnx`` ->
``model.int8.onnx``, ``models.onnx_backend.int8_file``), measures both, and ships the twins only when the
measure drops by at most ``max_drop`` (0.5 points) and they run faster than the float files on at least one
installed engine (``int8_speedups``: int8 is not faster everywhere; an AMX CPU runs bf16 as fast). Shipped, they
become artifact files, hashed in the manifest, ``defaults.precision`` becomes ``int8`` (what
``DEEPCANVAS_WEIGHTS_PRECISION=auto`` runs), ``defaults.int8_engines`` names the engines where they were faster
(the only ones that open them by default) and ``metrics`` records both numbers. Otherwise the twins are
deleted and the manifest is left as it was.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import ArtifactError, Manifest, load_artifact
from models.onnx_backend import Engine, Runtime, int8_file, open_session
from models.onnx_export import repack
from models.onnx_weights import load_with_fp32_weights

MAX_DROP = 0.005  # 0.5 points of the quality measure
CARD = "MODEL_CARD.md"
SPEED_ROUNDS = 15

ENGINES: tuple[Engine, ...] = ("openvino", "onnxruntime")
Speedups = dict[str, float]  # engine -> float time / int8 time on a calibration batch
Calibration = Callable[[str], Sequence[np.ndarray]]  # an ONNX file's path -> its input batches


@dataclass(frozen=True)
class QuantizationResult:
    metric: str
    float_score: float
    int8_score: float
    shipped: bool
    files: list[str]
    speedups: Speedups = dataclasses.field(default_factory=dict)
    max_drop: float = MAX_DROP  # the rule the verdict applied

    @property
    def verdict(self) -> str:
        """What became of the twins, and why."""
        if self.shipped:
            return f"int8 shipped, the default on {', '.join(self.faster_on)}"
        if self.drop_points > 100 * self.max_drop:
            return f"int8 not shipped: {self.drop_points:.2f} points lost (at most {100 * self.max_drop:.1f})"
        return "int8 not shipped: no engine ran it faster than the float file"

    @property
    def faster_on(self) -> list[str]:
        """The engines on which the int8 files ran faster than the float ones."""
        return sorted(engine for engine, ratio in self.speedups.items() if ratio > 1.0)

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


def int8_speedups(folder: Path, manifest: Manifest, onnx_files: Sequence[str], calibration: Calibration) -> Speedups:
    """Per installed engine, the float files' time over the int8 twins' on each file's first calibration batch.

    Medians of ``SPEED_ROUNDS`` interleaved calls per file, summed over the files, on the engine's defaults
    (OpenVINO's bf16 on CPUs with AMX, where int8 may not be faster).
    """
    speedups: Speedups = {}
    for engine in ENGINES:
        try:
            sessions = {
                int8: [open_session(folder, manifest, path, "cpu", Runtime(engine, int8=int8)) for path in onnx_files]
                for int8 in (False, True)
            }
        except ArtifactError:  # the engine is not installed
            continue
        totals = dict.fromkeys((False, True), 0.0)
        for index, path in enumerate(onnx_files):
            sample = calibration(path)[0]
            times: dict[bool, list[float]] = {False: [], True: []}
            for round_ in range(SPEED_ROUNDS + 2):
                for int8 in (False, True):
                    started = time.perf_counter()
                    sessions[int8][index].run(sample)
                    if round_ >= 2:  # two warm-up rounds
                        times[int8].append(time.perf_counter() - started)
            for int8 in (False, True):
                totals[int8] += statistics.median(times[int8])
        speedups[engine] = totals[False] / totals[True]
    return speedups


def quantize_artifact(
    folder: Path,
    onnx_files: Sequence[str],
    calibration: Calibration,
    score: Callable[[bool], float],
    metric: str,
    max_drop: float = MAX_DROP,
    ignored_types: Sequence[str] = (),
    calibrated_on: str = "training data",
    speed: Callable[[Manifest], Speedups] | None = None,
) -> QuantizationResult:
    """Write int8 twins of ``onnx_files``, measure ``score(False)`` (float) and ``score(True)`` (int8), ship or not.

    ``calibration(path)`` gives the input batches of the network in ``path``; ``score(int8)`` builds the served
    predictor on the float or the int8 files and returns the quality measure on the validation data;
    ``speed(manifest)`` the speedups per engine (default: ``int8_speedups`` on the first calibration batches).
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
    speedups = speed(measured) if speed else int8_speedups(folder, measured, onnx_files, calibration)
    holds = float_score - int8_score <= max_drop
    result = QuantizationResult(metric, float_score, int8_score, False, twins, speedups, max_drop)
    result = dataclasses.replace(result, shipped=holds and bool(result.faster_on))
    card = note_in_card(folder, result, max_drop, calibrated_on)
    if result.shipped:
        update = {
            "defaults": {**measured.defaults, "precision": "int8", "int8_engines": result.faster_on},
            "metrics": {**measured.metrics, f"float32_{metric}": float_score, f"int8_{metric}": int8_score},
        }
        repack_with(folder, measured, card, update)
        return result
    for twin in twins:
        (folder / twin).unlink()
    kept = measured.model_copy(update={"files": [e for e in measured.files if e.path not in twins]})
    repack_with(folder, kept, card, {})
    return dataclasses.replace(result, files=[])


def note_in_card(folder: Path, result: QuantizationResult, max_drop: float, calibrated_on: str) -> list[str]:
    """Append both numbers and the verdict to the artifact's model card; the files to re-hash (none without one)."""
    card = folder / CARD
    if not card.is_file():
        return []
    engines = ", ".join(result.faster_on) or "none"
    verdict = (
        f"shipped, the default on the engines where it ran faster ({engines})" if result.shipped else "not shipped"
    )
    speed = ", ".join(f"{engine} {ratio:.2f}x" for engine, ratio in sorted(result.speedups.items()))
    lines = [
        "",
        "## int8 (post-training quantization)",
        "",
        f"NNCF post-training quantization, calibrated on {calibrated_on}, into {', '.join(result.files)}: "
        f"{verdict}. The rule ships it when {result.metric} drops by at most {100 * max_drop:.1f} points (both "
        "measured through the served ONNX predictor on ONNX Runtime) and it runs faster than the float file on "
        f"an engine. Float time over int8 time on one calibration batch: {speed or 'not measured'}.",
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
