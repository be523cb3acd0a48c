"""The LFW folder: ``pairs.txt`` (10 folds of 300 same + 300 different pairs) and ``images/<Name>/<Name>_NNNN.jpg``.

A pair whose image is missing (a tenth of the identities is absent from our copy) is skipped and counted.
Identities are split in two halves by a hash of the name: thresholds are chosen on ``choose`` and
reported on ``report``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

IMAGES = "images"


@dataclass(frozen=True)
class Pair:
    fold: int
    same: bool
    first: str  # image keys, "Name/Name_0001"
    second: str


def image_key(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}"


def read_pairs(root: Path) -> tuple[list[Pair], int]:
    """The usable pairs (both images present) and how many pairs ``pairs.txt`` lists in all."""
    lines = (root / "pairs.txt").read_text().splitlines()
    folds, per_fold = (int(x) for x in lines[0].split())
    pairs, total = [], 0
    for index, line in enumerate(lines[1:]):
        fields = line.split("\t")
        if not line.strip():
            continue
        total += 1
        fold = index // (2 * per_fold)
        if len(fields) == 3:
            pair = Pair(fold, True, image_key(fields[0], int(fields[1])), image_key(fields[0], int(fields[2])))
        elif len(fields) == 4:
            pair = Pair(fold, False, image_key(fields[0], int(fields[1])), image_key(fields[2], int(fields[3])))
        else:
            raise ValueError(f"pairs.txt line {index + 2}: {line!r} is neither a same nor a different pair")
        if image_path(root, pair.first).is_file() and image_path(root, pair.second).is_file():
            pairs.append(pair)
    assert max(p.fold for p in pairs) < folds
    return pairs, total


def image_path(root: Path, key: str) -> Path:
    return root / IMAGES / f"{key}.jpg"


def image_keys(root: Path) -> list[str]:
    """Every image of the folder, sorted ("Name/Name_0001")."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in (root / IMAGES).glob("*/*.jpg"))


def person(key: str) -> str:
    return key.split("/", 1)[0]


def half(name: str) -> str:
    """``choose`` or ``report``: a stable split of identities by name."""
    return "choose" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "report"
