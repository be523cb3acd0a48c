"""LFW gender data: scan the image folders and name lists, split by identity, serve tensors.

Layout of ``root``: ``images/<Name>/<Name>_NNNN.jpg`` and ``gender/{male,female}_names.txt``
(one image file name per line). A person listed in both lists has no trustworthy label and is dropped,
as are images in neither list. Splits never share a person, so the test set measures new faces.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from models.classifier.pipeline import expand_box
from models.classifier.transforms import BoxCrop, Transform, image_to_uint8

LABELS: tuple[str, ...] = ("female", "male")
NAME_LISTS = {"female": "female_names.txt", "male": "male_names.txt"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into LABELS
    identity: str
    source: str = "lfw"  # the slice it is reported in: "lfw", "crops", "portraits"
    box: tuple[float, ...] | None = None  # face box [x1, y1, x2, y2] in pixels; None: the image is the face crop


def identity_of(file_name: str) -> str:
    """``George_W_Bush_0042.jpg`` -> ``George_W_Bush``."""
    return Path(file_name).stem.rsplit("_", 1)[0]


def read_name_list(path: Path) -> set[str]:
    """Image file names, one per line; tolerant of CRLF endings, blank lines and stray spaces."""
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def labels_by_file(gender_dir: Path) -> dict[str, int]:
    """File name -> label index, without any person who appears in more than one list."""
    lists = {LABELS.index(label): read_name_list(gender_dir / name) for label, name in NAME_LISTS.items()}
    people: dict[str, set[int]] = defaultdict(set)
    for label, names in lists.items():
        for name in names:
            people[identity_of(name)].add(label)
    ambiguous = {person for person, labels in people.items() if len(labels) > 1}
    return {name: label for label, names in lists.items() for name in names if identity_of(name) not in ambiguous}


def scan_lfw(root: Path) -> list[Sample]:
    """Every labelled image under ``root/images``, sorted by path (deterministic)."""
    labels = labels_by_file(root / "gender")
    samples = [
        Sample(path=path, label=labels[path.name], identity=path.parent.name)
        for path in sorted((root / "images").glob("*/*.jpg"))
        if path.name in labels
    ]
    if not samples:
        raise ValueError(f"no labelled images under {root / 'images'}")
    return samples


def split_by_identity(
    samples: Sequence[Sample], fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[Sample], ...]:
    """Split into ``len(fractions)`` parts that share no identity, stratified by label.

    Within each label the people are shuffled and laid end to end by image count; a person goes to
    the part in which the middle of their images falls, so parts match ``fractions`` in images.
    """
    assert abs(sum(fractions) - 1.0) < 1e-6, f"fractions must sum to 1, got {fractions}"
    by_person: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_person[sample.identity].append(sample)
    parts: list[list[Sample]] = [[] for _ in fractions]
    rng = random.Random(seed)
    for label in sorted({s.label for s in samples}):
        people = sorted(p for p, group in by_person.items() if group[0].label == label)
        rng.shuffle(people)
        _deal_people([by_person[p] for p in people], fractions, parts)
    return tuple(parts)


def _deal_people(groups: list[list[Sample]], fractions: tuple[float, ...], parts: list[list[Sample]]) -> None:
    total = sum(len(group) for group in groups)
    bounds = [sum(fractions[: i + 1]) * total for i in range(len(fractions))]
    seen = 0
    for group in groups:
        assert len({s.label for s in group}) == 1, f"{group[0].identity} has mixed labels"
        middle = seen + len(group) / 2
        parts[next(i for i, bound in enumerate(bounds) if middle <= bound or i == len(bounds) - 1)].extend(group)
        seen += len(group)


def class_counts(samples: Sequence[Sample], num_classes: int = len(LABELS)) -> list[int]:
    counts = [0] * num_classes
    for sample in samples:
        counts[sample.label] += 1
    return counts


def served_crop(margin: float) -> BoxCrop:
    """Crop a face box grown by ``margin`` per side, clipped to the image: what ``/classify`` feeds the network."""

    def crop(image: Image.Image, box: tuple[float, ...]) -> Image.Image:
        return image.crop(expand_box(box, margin, image.width, image.height))

    return crop


class FaceDataset(Dataset[tuple[torch.Tensor, int]]):
    """``(image (3, S, S) float, label)`` pairs; the transforms decide augmentation and size.

    A sample with a face box is first cropped by ``box_crop`` (default: as served, 0.1 margin) and then
    goes through ``boxed_transform`` (default: ``transform``), so training can jitter the box instead of
    zooming the crop a second time.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Transform,
        box_crop: BoxCrop | None = None,
        boxed_transform: Transform | None = None,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.box_crop = box_crop or served_crop(0.1)
        self.boxed_transform = boxed_transform or transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        with Image.open(sample.path) as image:
            if sample.box is None:
                return self.transform(image_to_uint8(image)), sample.label  # (3, H, W) uint8 in
            crop = self.box_crop(image.convert("RGB"), sample.box)
        return self.boxed_transform(image_to_uint8(crop)), sample.label
