"""Natural faces with gender labels (``faces-gender``): scan, attach cached face boxes, split disjointly.

Layout of ``root``: ``{crops,portraits}/{female,male}/*.jpg``. ``crops`` are tight face crops, used whole
like LFW; ``portraits`` are head-and-shoulder photos whose face box comes from the cache written by
``models.classifier.face_boxes`` (a portrait without a detected face is left out, as ``/classify`` would
find no face in it). There are no identities, so near-duplicate pictures (by perceptual hash) stand in
for them: a group never straddles two splits. Splits are stratified by subset and label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.classifier.data import LABELS, Sample, split_by_identity
from models.classifier.face_boxes import group_near_duplicates, image_files, read_cache

FACES_SPLIT = (0.7, 0.15, 0.15)


def scan_faces(root: Path, cache: dict[str, dict[str, Any]]) -> list[Sample]:
    """Every labelled image under ``root`` with its slice (``crops``/``portraits``), box and duplicate group."""
    files = [f for f in image_files(root) if f in cache]
    if not files:
        raise ValueError(f"no cached images under {root}: build the cache with `deepcanvas data classifier-boxes`")
    groups = group_near_duplicates([cache[f]["dhash"] for f in files])
    samples = []
    for relative, group in zip(files, groups, strict=True):
        subset, label = relative.split("/")[:2]
        box = cache[relative].get("box")
        if subset == "portraits" and box is None:
            continue
        samples.append(
            Sample(
                path=root / relative,
                label=LABELS.index(label),
                identity=f"faces/{files[group]}",  # the group's first file names it
                source=subset,
                box=tuple(box) if box is not None else None,
            )
        )
    return samples


def split_faces(
    samples: Sequence[Sample], fractions: tuple[float, ...] = FACES_SPLIT, seed: int = 0
) -> tuple[list[Sample], ...]:
    """Train/validation/test parts sharing no duplicate group, stratified by subset and label.

    A group whose pictures carry both labels (a mislabelled copy) is dropped: it has no trustworthy label.
    """
    parts: list[list[Sample]] = [[] for _ in fractions]
    labels_of: dict[str, set[int]] = {}
    for sample in samples:
        labels_of.setdefault(sample.identity, set()).add(sample.label)
    clean = [s for s in samples if len(labels_of[s.identity]) == 1]
    for source in sorted({s.source for s in clean}):
        for part, split in zip(
            parts, split_by_identity([s for s in clean if s.source == source], fractions, seed), strict=True
        ):
            part.extend(split)
    return tuple(parts)


def load_faces(root: Path, cache_path: Path, seed: int = 0) -> tuple[list[Sample], ...]:
    """``(train, val, test)`` of the natural faces under ``root`` with the cache at ``cache_path``."""
    return split_faces(scan_faces(root, read_cache(cache_path)), FACES_SPLIT, seed)


def slices(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    """The labelled slices of a natural-face split: all of it, then each subset."""
    found: dict[str, list[Sample]] = {"faces": list(samples)}
    for source in sorted({s.source for s in samples}):
        found[f"faces/{source}"] = [s for s in samples if s.source == source]
    return found
