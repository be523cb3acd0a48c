from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.classifier import metrics as M


def test_accuracy_counts_exact_matches() -> None:
    assert M.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions() -> None:
    matrix = M.confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], num_classes=2)
    assert matrix.tolist() == [[1, 1], [1, 2]]


def test_balanced_accuracy_exposes_a_majority_class_guesser() -> None:
    y_true, y_pred = [0, 0, 0, 1], [0, 0, 0, 0]
    assert M.accuracy(y_true, y_pred) == 0.75
    assert M.recall_per_class(y_true, y_pred, 2).tolist() == [1.0, 0.0]
    assert M.balanced_accuracy(y_true, y_pred, 2) == 0.5


def test_balanced_accuracy_ignores_classes_absent_from_the_truth() -> None:
    recalls = M.recall_per_class([0, 0, 1], [0, 1, 1], num_classes=3)
    assert np.isnan(recalls[2])
    assert M.balanced_accuracy([0, 0, 1], [0, 1, 1], num_classes=3) == pytest.approx((0.5 + 1.0) / 2)


def test_roc_auc_of_a_hand_computed_case() -> None:
    # Pairs (positive, negative): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


def test_roc_auc_counts_a_tied_pair_as_one_half() -> None:
    # Pairs: (0.5 vs 0.5) tie = 0.5, (0.5 vs 0.2) = 1, (0.9 vs 0.5) = 1, (0.9 vs 0.2) = 1 -> 3.5 / 4.
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875
    assert M.roc_auc([0, 1, 1, 0], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_roc_auc_is_one_for_a_perfect_ranking_and_zero_for_a_reversed_one() -> None:
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert M.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0


def test_roc_curve_of_a_hand_computed_case() -> None:
    fpr, tpr, thresholds = M.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]


def test_roc_curve_gives_tied_scores_one_diagonal_step() -> None:
    fpr, tpr, _ = M.roc_curve([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])
    assert list(zip(fpr.tolist(), tpr.tolist(), strict=True)) == [(0, 0), (0, 0.5), (0.5, 1), (1, 1)]


def brute_force_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    positives, negatives = scores[y_true == 1], scores[y_true == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)]
    return float(np.mean(wins))


def test_roc_auc_equals_pairwise_wins_and_the_area_under_roc_curve_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) * 0.5 + 0.3 * y_true, 1)  # rounding makes many ties
    fpr, tpr, _ = M.roc_curve(y_true, scores)
    auc = M.roc_auc(y_true, scores)
    assert auc == pytest.approx(brute_force_auc(y_true, scores))
    assert auc == pytest.approx(np.trapezoid(tpr, fpr))
