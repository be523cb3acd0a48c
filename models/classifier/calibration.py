"""Calibration of the classifier's scores: temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", 2017), expected calibration error and the reliability diagram. Plain numpy.

Logits come as ``(N, V, C)``: N faces, V views each (1, or 2 with flip test-time augmentation), C classes;
probabilities are the mean over the views of ``softmax(logits / T)``, exactly as the predictors serve them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.classifier.pipeline import probabilities

Floats = npt.NDArray[np.float64]


def view_probabilities(logits: npt.NDArray[Any], temperature: float = 1.0) -> Floats:
    """``(N, C)`` served probabilities from ``(N, V, C)`` logits, through the predictors' own pipeline."""
    assert logits.ndim == 3 and logits.shape[1] in (1, 2), f"logits must be (N, 1 or 2, C), got {logits.shape}"
    flip = logits.shape[1] == 2
    stacked = np.concatenate([logits[:, 0], logits[:, 1]]) if flip else logits[:, 0]  # (V*N, C), views in blocks
    return probabilities(stacked, flip, temperature)


def negative_log_likelihood(logits: npt.NDArray[Any], labels: npt.ArrayLike, temperature: float) -> float:
    probs = view_probabilities(logits, temperature)
    true = np.asarray(labels, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(probs[np.arange(true.size), true], 1e-12, 1.0))))


def fit_temperature(logits: npt.NDArray[Any], labels: npt.ArrayLike, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature minimising the validation negative log-likelihood (golden-section search on log T)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):  # the NLL is unimodal in log T; 60 steps shrink the bracket below 1e-10
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if negative_log_likelihood(logits, labels, float(np.exp(c))) < negative_log_likelihood(
            logits, labels, float(np.exp(d))
        ):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def reliability_curve(probs: Floats, labels: npt.ArrayLike, bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width bin of the score (the top probability): mean score, accuracy and count."""
    true = np.asarray(labels, dtype=np.int64)
    score, correct = probs.max(axis=1), (probs.argmax(axis=1) == true).astype(np.float64)
    index = np.minimum((score * bins).astype(np.int64), bins - 1)  # (N,) bin of each face
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=score, minlength=bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
    return {"confidence": confidence.tolist(), "accuracy": accuracy.tolist(), "count": counts.tolist()}


def expected_calibration_error(probs: Floats, labels: npt.ArrayLike, bins: int = 15) -> float:
    """Mean |accuracy - score| over equal-width score bins, weighted by the bins' share of the faces."""
    curve = reliability_curve(probs, labels, bins)
    counts = np.asarray(curve["count"])
    gaps = np.abs(np.asarray(curve["accuracy"]) - np.asarray(curve["confidence"]))
    return float(np.nansum(gaps * counts) / counts.sum())


def plot_reliability(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    """One reliability diagram with a line per named curve (e.g. before and after temperature scaling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.0, 3.8), dpi=120)
    axes.plot([0.5, 1], [0.5, 1], linestyle=":", color="grey", label="perfect")
    for name, curve in curves.items():
        keep = np.asarray(curve["count"]) > 0
        axes.plot(np.asarray(curve["confidence"])[keep], np.asarray(curve["accuracy"])[keep], marker="o", label=name)
    axes.set(xlabel="score (top probability)", ylabel="accuracy", title="Reliability (validation)")
    axes.set(xlim=(0.45, 1.01), ylim=(0.0, 1.01))
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
