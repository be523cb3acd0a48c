"""The embedder's calibrated decision thresholds, read from its manifest (``hyperparameters.thresholds``).

Convention (the identity contract): descriptors are L2-normalised; ``similarity = a·b`` and
``distance = ||a - b||``, so ``distance² = 2 - 2·similarity``. /verify compares a distance with
``verify_distance``; /identify compares a similarity with the entry for the gallery's size, because the
more faces are enrolled, the likelier a stranger resembles one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.artifact import Manifest

# dlib's published 0.6 (distance) until an artifact carries its own calibration.
PLACEHOLDER_DISTANCE = 0.6


def similarity_of(distance: float) -> float:
    return 1.0 - distance * distance / 2.0


def distance_of(similarity: float) -> float:
    return float(max(0.0, 2.0 - 2.0 * similarity) ** 0.5)


@dataclass(frozen=True)
class Thresholds:
    verify_distance: float
    identify: tuple[tuple[int, float], ...]  # (gallery_size, similarity), by gallery_size

    def identify_similarity(self, gallery_size: int) -> float:
        """The entry of the largest gallery_size ≤ ``gallery_size`` (the first entry when smaller)."""
        chosen = self.identify[0][1]
        for size, similarity in self.identify:
            if size <= gallery_size:
                chosen = similarity
        return chosen


def thresholds_of(manifest: Manifest) -> Thresholds:
    raw: dict[str, Any] = manifest.hyperparameters.get("thresholds") or {}
    distance = float(raw.get("verify_distance", PLACEHOLDER_DISTANCE))
    table = sorted((int(e["gallery_size"]), float(e["similarity"])) for e in raw.get("identify_similarity", []))
    return Thresholds(distance, tuple(table) or ((1, similarity_of(distance)),))
