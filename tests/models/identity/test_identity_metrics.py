"""Verification and open-set measures on hand-made numbers."""

from __future__ import annotations

import numpy as np

from models.identity.metrics import best_threshold, lowest_safe_threshold, open_set_rates, roc, ten_fold
from models.identity.pipeline import BoxMapping, implied_rects


def test_the_threshold_is_chosen_on_the_other_folds() -> None:
    # fold 0's pairs are separable at 0.5, fold 1's at 0.7: each fold is tested with the other's threshold
    distances = np.array([0.4, 0.6, 0.6, 0.8])
    same = np.array([True, False, True, False])
    folds = np.array([0, 0, 1, 1])
    result = ten_fold(distances, same, folds)
    assert result["thresholds"] == [0.7, 0.5]
    assert result["fold_accuracy"] == [0.5, 0.5]
    assert best_threshold(distances[:2], same[:2]) == 0.5
    assert roc(distances[:2], same[:2])["auc"] == 1.0


def test_open_set_rates_count_right_wrong_and_unknown() -> None:
    best = np.array([0.95, 0.95, 0.85, 0.92])
    named = np.array(["a", "b", "a", "a"])
    truth = np.array(["a", "a", "a", "x"])
    known = np.array([True, True, True, False])
    rates = open_set_rates(best, named, truth, known, np.array([0.8, 0.9, 0.96]))
    assert rates["correct_accept"].tolist() == [2 / 3, 1 / 3, 0.0]
    assert rates["wrong_name"].tolist() == [1 / 3, 1 / 3, 0.0]
    assert rates["unknown_accepted"].tolist() == [1.0, 1.0, 0.0]
    grid = np.array([0.8, 0.85, 0.9, 0.95])
    assert lowest_safe_threshold(grid, np.array([0.5, 0.0, 0.02, 0.0]), 0.01) == 0.95
    assert lowest_safe_threshold(grid, np.array([0.5, 0.0, 0.0, 0.0]), 0.01) == 0.85


def test_the_box_mapping_and_the_implied_box_invert_each_other() -> None:
    mapping = BoxMapping(offset=(0.1, -0.05), scale=(0.9, 1.1))
    rect = mapping.rects(np.array([[100.0, 50.0, 200.0, 170.0]]))[0]
    assert np.allclose(rect, [160 - 45, 104 - 66, 160 + 45, 104 + 66])  # centre (150 + 10, 110 - 6)
    mean_shape = np.array([[0.2, 0.3], [0.8, 0.3], [0.5, 0.7]])
    points = mean_shape[None] * 80 + np.array([10.0, 20.0])
    assert np.allclose(implied_rects(points, mean_shape), [[10, 20, 90, 100]])
