"""The shape predictor's vectorised cascade against a plain walk of dlib's trees, on a random predictor."""

from __future__ import annotations

import numpy as np
import pytest

from models.identity.landmarks import ShapePredictor, intensity, leaf_table, similarity_matrices


def test_the_leaf_table_follows_each_patterns_walk() -> None:
    # depth 2: split 0 sends the walk to split 1 (bit 0 clear) or 2 (set); leaves are nodes 3..6
    table = leaf_table(2)
    assert [table[0b000], table[0b010], table[0b001], table[0b101], table[0b111]] == [0, 1, 2, 3, 3]
    assert table[0b100] == 0  # split 2's bit is never read on the left
    assert sorted(set(leaf_table(4).tolist())) == list(range(16))


def _random_predictor(rng: np.random.Generator, cascades: int = 3, trees: int = 7, depth: int = 3) -> dict:
    points, features, splits = 5, 40, 2**depth - 1
    return {
        "initial_shape": rng.uniform(0.2, 0.8, (points, 2)).astype(np.float32),
        "split_idx": rng.integers(0, features, (cascades, trees, splits, 2)),
        "thresholds": rng.normal(0, 30, (cascades, trees, splits)).astype(np.float32),
        "leaves": rng.normal(0, 0.01, (cascades, trees, splits + 1, points, 2)).astype(np.float32),
        "anchor_idx": rng.integers(0, points, (cascades, features)),
        "deltas": rng.normal(0, 0.3, (cascades, features, 2)).astype(np.float32),
    }


def _walk(arrays: dict, image: np.ndarray, rect: np.ndarray) -> np.ndarray:
    """dlib's algorithm one face, tree and split at a time, in plain Python loops."""
    shape = arrays["initial_shape"].astype(np.float32).copy()
    origin, size = rect[:2], rect[2:] - rect[:2]
    height, width = image.shape[:2]
    gray = intensity(image)
    for cascade in range(arrays["thresholds"].shape[0]):
        turn, _ = similarity_matrices(arrays["initial_shape"], shape)
        values = []
        for anchor, delta in zip(arrays["anchor_idx"][cascade], arrays["deltas"][cascade], strict=True):
            unit = turn @ delta.astype(np.float64) + shape[anchor]
            x, y = np.floor(unit * size + origin + 0.5).astype(int)
            values.append(gray[y, x] if 0 <= x < width and 0 <= y < height else 0.0)
        for tree in range(arrays["thresholds"].shape[1]):
            node, splits = 0, arrays["thresholds"].shape[2]
            while node < splits:
                first, second = arrays["split_idx"][cascade, tree, node]
                above = values[first] - values[second] > arrays["thresholds"][cascade, tree, node]
                node = 2 * node + (1 if above else 2)
            shape = shape + arrays["leaves"][cascade, tree, node - splits]
    return shape * size + origin


@pytest.mark.parametrize("channels", [3, 0], ids=["rgb", "gray"])
def test_the_vectorised_cascade_gives_the_walks_landmarks(channels: int) -> None:
    rng = np.random.default_rng(11)
    arrays = _random_predictor(rng)
    image = rng.integers(0, 256, (90, 120, channels) if channels else (90, 120), dtype=np.uint8)
    rects = np.array([[20.0, 15.0, 80.0, 75.0], [-10.0, 40.0, 50.0, 100.0], [60.5, 5.25, 118.0, 70.0]])
    got = ShapePredictor(arrays).predict(image, rects)
    expected = np.stack([_walk(arrays, image, rect) for rect in rects])
    assert np.allclose(got, expected, atol=1e-4)
    assert np.abs(got - rects[:, None, :2]).max() > 1  # the landmarks moved off the boxes' corners
