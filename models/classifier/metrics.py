"""Classification metrics in plain numpy: accuracy, balanced accuracy, recall, confusion, ROC.

Labels are integer class indices ``0 .. num_classes-1``; scores for the ROC are the probability of
the positive class. Every function takes array-likes and returns Python floats or numpy arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def _labels(values: ArrayLike) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    assert array.ndim == 1, f"labels must be 1-D, got shape {array.shape}"
    return array.astype(np.int64)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
    """``matrix[t, p]`` counts samples of true class ``t`` predicted as ``p``."""
    true, pred = _labels(y_true), _labels(y_pred)
    assert true.shape == pred.shape, f"y_true {true.shape} and y_pred {pred.shape} differ"
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    true, pred = _labels(y_true), _labels(y_pred)
    assert true.size > 0, "accuracy of an empty set is undefined"
    return float(np.mean(true == pred))


def recall_per_class(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> npt.NDArray[np.float64]:
    """Recall of each class; NaN for a class absent from ``y_true``."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true`` (robust to class imbalance)."""
    return float(np.nanmean(recall_per_class(y_true, y_pred, num_classes)))


def roc_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """False and true positive rates at every distinct score threshold (``score >= threshold``).

    Returns ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf; tied scores share
    one point, so ties draw a diagonal segment rather than an optimistic staircase.
    """
    true, score = _binary(y_true, scores)
    order = np.argsort(-score, kind="stable")
    score, true = score[order], true[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]  # index ending each tie run
    tps = np.cumsum(true)[last_of_run]
    fps = (last_of_run + 1) - tps
    positives, negatives = true.sum(), true.size - true.sum()
    tpr = np.r_[0.0, tps / positives]
    fpr = np.r_[0.0, fps / negatives]
    return fpr, tpr, np.r_[np.inf, score[last_of_run]]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic; ties count one half."""
    true, score = _binary(y_true, scores)
    ranks = _average_ranks(score)
    positives = int(true.sum())
    negatives = true.size - positives
    rank_sum = ranks[true == 1].sum()
    u_statistic = rank_sum - positives * (positives + 1) / 2
    return float(u_statistic / (positives * negatives))


def _binary(y_true: ArrayLike, scores: ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    true, score = _labels(y_true), np.asarray(scores, dtype=np.float64)
    assert true.shape == score.shape, f"y_true {true.shape} and scores {score.shape} differ"
    assert set(np.unique(true).tolist()) == {0, 1}, "ROC needs both classes 0 and 1 in y_true"
    return true, score


def _average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks where tied values share the mean of the ranks they span."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    run_starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    run_ends = np.r_[run_starts[1:], values.size]  # exclusive
    mean_rank = (run_starts + run_ends + 1) / 2  # mean of ranks start+1 .. end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, run_ends - run_starts)
    return ranks
