"""The embedder's int8 measure: LFW accuracy at the shipped threshold, validation folds apart from test folds."""

from __future__ import annotations

import numpy as np

from models.identity.quantize import PairChips, verification_accuracies


def _forward(chips: np.ndarray) -> np.ndarray:
    """A descriptor per chip from its top-left pixel of channel 0 (mirroring moves the pixel: flip shows)."""
    descriptors = np.zeros((len(chips), 128), np.float32)
    descriptors[:, 0] = 1.0
    descriptors[:, 1] = chips[:, 0, 0, 0]
    return descriptors


def test_accuracy_is_counted_on_the_validation_and_the_test_pairs_apart() -> None:
    chips = np.zeros((4, 3, 150, 150), np.float32)
    chips[:, 0, 0, 0] = [0.0, 0.1, 5.0, 0.2]  # faces 0, 1 and 3 near one another, face 2 far away
    data = PairChips(
        chips,
        first=np.array([0, 0, 0, 1]),
        second=np.array([1, 2, 3, 2]),
        same=np.array([True, False, False, True]),  # validation: right, right; test: wrong, wrong
        validation=np.array([True, True, False, False]),
    )
    assert verification_accuracies(_forward, data, threshold=0.5, flip=False) == {"validation": 1.0, "test": 0.0}
    # the mirrored chips' top-left pixel is 0: averaged in, they halve the small distances (0-3: 0.20 -> 0.10)
    assert verification_accuracies(_forward, data, threshold=0.15, flip=False) == {"validation": 1.0, "test": 0.5}
    assert verification_accuracies(_forward, data, threshold=0.15, flip=True) == {"validation": 1.0, "test": 0.0}
    assert verification_accuracies(_forward, data, threshold=2.0, flip=False) == {"validation": 0.5, "test": 0.5}
