"""Fixtures for the classifier: a tiny generated LFW-like folder and a classifier trained on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.artifact import Manifest
from models.classifier.train import TrainConfig, train_classifier

FEMALES = [f"Fiona_Test{i}" for i in range(6)]
MALES = [f"Mark_Test{i}" for i in range(10)]
IN_BOTH_LISTS = "Alex_Ambiguous"
UNLISTED = "Una_Unlisted"
IMAGES_PER_PERSON = 3


def write_face(path: Path, female: bool, rng: np.random.Generator) -> None:
    """A 40x40 'face': a warm or cool disc on noise, so the two classes are learnable."""
    yy, xx = np.mgrid[:40, :40]
    disc = ((yy - 20) ** 2 + (xx - 20) ** 2 < 15**2)[..., None]
    colour = np.array([200, 90, 80]) if female else np.array([80, 110, 200])
    pixels = np.where(disc, colour, 60) + rng.normal(0, 12, (40, 40, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)


def make_tiny_lfw(root: Path) -> Path:
    """``root/images/<Name>/<Name>_NNNN.jpg`` plus ``root/gender/*_names.txt`` with CRLF endings, like LFW."""
    rng = np.random.default_rng(0)
    listed: dict[str, list[str]] = {"female": [], "male": []}
    people = [(n, True) for n in FEMALES] + [(n, False) for n in MALES]
    people += [(IN_BOTH_LISTS, True), (UNLISTED, True)]
    for name, female in people:
        for k in range(1, IMAGES_PER_PERSON + 1):
            file_name = f"{name}_{k:04d}.jpg"
            write_face(root / "images" / name / file_name, female, rng)
            if name == IN_BOTH_LISTS:
                listed["female" if k == 1 else "male"].append(file_name)
            elif name != UNLISTED:
                listed["female" if female else "male"].append(file_name)
    (root / "gender").mkdir(parents=True)
    for label, names in listed.items():
        (root / "gender" / f"{label}_names.txt").write_bytes(("\r\n".join(names) + "\r\n").encode())
    return root


@dataclass(frozen=True)
class TinyLfw:
    root: Path
    females: tuple[str, ...] = tuple(FEMALES)
    males: tuple[str, ...] = tuple(MALES)
    in_both_lists: str = IN_BOTH_LISTS
    unlisted: str = UNLISTED
    images_per_person: int = IMAGES_PER_PERSON


@pytest.fixture(scope="session")
def tiny_lfw(tmp_path_factory: pytest.TempPathFactory) -> TinyLfw:
    """A generated LFW-like folder: 6 women, 10 men, one person in both lists, one in neither."""
    return TinyLfw(make_tiny_lfw(tmp_path_factory.mktemp("lfw")))


def tiny_config(data_root: Path, out_dir: Path, **overrides: object) -> TrainConfig:
    """A recipe that trains in about a second: 32 px inputs, two narrow stages, two epochs."""
    fields: dict[str, object] = dict(
        epochs=2,
        batch_size=8,
        lr=1e-2,
        input_size=32,
        widths=(4, 8),
        threads=1,
        progress=False,
        split_fractions=(0.5, 0.25, 0.25),
    )
    fields.update(overrides)
    return TrainConfig(data_root=data_root, out_dir=out_dir, **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_recipe() -> Callable[..., TrainConfig]:
    """``tiny_recipe(data_root, out_dir, **overrides)``: a TrainConfig that trains in about a second."""
    return tiny_config


@pytest.fixture(scope="session")
def tiny_trained(tiny_lfw: TinyLfw, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """A classifier artifact trained on ``tiny_lfw``: (folder, manifest)."""
    out_dir = tmp_path_factory.mktemp("trained") / "v1"
    return out_dir, train_classifier(tiny_config(tiny_lfw.root, out_dir))
