"""Verification and identification measures on normalised descriptors; pure numpy.

Verification (LFW pairs): ``same = distance <= threshold``; 10-fold cross-validation chooses the threshold
on 9 folds (the best accuracy, the middle of the best interval) and tests it on the 10th.
Identification: a gallery of enrolled faces, queries of enrolled people (their other photos) and of people
held out; for every similarity threshold, the share of known queries named correctly (correct-accept) or
wrongly (wrong-name), and the share of unknown queries given any name (unknown-accepted).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIMILARITY_GRID = np.round(np.arange(0.70, 0.981, 0.005), 3)


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold with the best accuracy on these pairs (middle of the best run of cut points)."""
    order = np.sort(np.unique(distances))
    cuts = np.concatenate([[order[0] - 1e-6], (order[:-1] + order[1:]) / 2, [order[-1] + 1e-6]])
    accuracy = np.array([np.mean((distances <= cut) == same) for cut in cuts])
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(cuts[best[len(best) // 2]])


def ten_fold(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    """Per-fold accuracy with the threshold chosen on the other folds; mean, std and the thresholds."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((distances[test] <= threshold) == same[test])))
    return {
        "accuracy": float(np.mean(accuracies)),
        "std": float(np.std(accuracies)),
        "fold_accuracy": accuracies,
        "thresholds": thresholds,
    }


def roc(distances: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """True- and false-accept rates as the distance threshold grows, and the area under the curve."""
    order = np.argsort(distances, kind="stable")
    positives, negatives = max(int(same.sum()), 1), max(int((~same).sum()), 1)
    tpr = np.concatenate([[0.0], np.cumsum(same[order]) / positives])
    fpr = np.concatenate([[0.0], np.cumsum(~same[order]) / negatives])
    return {"fpr": fpr, "tpr": tpr, "auc": float(np.trapezoid(tpr, fpr))}


def best_matches(gallery: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the best similarity and the label of the gallery face that has it."""
    similarity = queries @ gallery.T
    best = similarity.argmax(1)
    return similarity[np.arange(len(queries)), best], labels[best]


def open_set_rates(
    best: np.ndarray, named: np.ndarray, truth: np.ndarray, known: np.ndarray, thresholds: np.ndarray
) -> dict[str, np.ndarray]:
    """Rates per threshold: ``truth`` is each query's person, ``known`` whether that person is enrolled."""
    accepted = best[None, :] >= thresholds[:, None]  # (T, Q)
    right = named == truth
    known_count, unknown_count = max(int(known.sum()), 1), max(int((~known).sum()), 1)
    return {
        "correct_accept": (accepted & right & known).sum(1) / known_count,
        "wrong_name": (accepted & ~right & known).sum(1) / known_count,
        "unknown_accepted": (accepted & ~known).sum(1) / unknown_count,
    }


def lowest_safe_threshold(thresholds: np.ndarray, unknown_accepted: np.ndarray, limit: float) -> float:
    """The lowest threshold from which on at most ``limit`` of the unknown queries get a name."""
    safe = unknown_accepted <= limit
    for index in range(len(thresholds)):
        if safe[index:].all():
            return float(thresholds[index])
    return float(thresholds[-1])
