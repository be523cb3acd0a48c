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


PORTRAIT_BOX = (20.0, 30.0, 60.0, 80.0)  # where make_tiny_faces draws the face of every portrait


def write_portrait(path: Path, female: bool, rng: np.random.Generator) -> None:
    """An 80x110 'portrait': the learnable disc inside PORTRAIT_BOX on a smooth random background."""
    coarse = Image.fromarray(rng.integers(30, 220, (4, 3, 3), dtype=np.uint8)).resize((80, 110), Image.BILINEAR)
    pixels = np.asarray(coarse, dtype=np.float64) + rng.normal(0, 4, (110, 80, 3))  # a scene of its own
    x1, y1, x2, y2 = (int(v) for v in PORTRAIT_BOX)
    yy, xx = np.mgrid[y1:y2, x1:x2]
    disc = (yy - (y1 + y2) / 2) ** 2 / ((y2 - y1) / 2) ** 2 + (xx - (x1 + x2) / 2) ** 2 / ((x2 - x1) / 2) ** 2 < 1
    colour = np.array([200, 90, 80]) if female else np.array([80, 110, 200])
    pixels[y1:y2, x1:x2] = np.where(disc[..., None], colour, pixels[y1:y2, x1:x2])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)


def make_tiny_faces(root: Path, per_class: int = 8) -> Path:
    """``root/{crops,portraits}/{female,male}/*.jpg`` like ``faces-gender``; portrait ``p00`` of each class
    has a near-duplicate copy ``p00-copy`` (re-encoded), and ``noface.jpg`` is a portrait without a face."""
    rng = np.random.default_rng(1)
    for label in ("female", "male"):
        for k in range(per_class):
            write_face(root / "crops" / label / f"c{k:02d}.jpg", label == "female", rng)
            write_portrait(root / "portraits" / label / f"p{k:02d}.jpg", label == "female", rng)
        with Image.open(root / "portraits" / label / "p00.jpg") as original:
            original.save(root / "portraits" / label / "p00-copy.jpg", quality=70)
    Image.new("RGB", (80, 110), (110, 110, 110)).save(root / "portraits" / "male" / "noface.jpg")
    return root


def fake_teacher(image: Image.Image) -> tuple[list[float], float] | None:
    """Finds the drawn face of a tiny portrait, nothing in a flat grey picture."""
    return None if np.asarray(image).std() < 1 else (list(PORTRAIT_BOX), 0.99)


@dataclass(frozen=True)
class TinyFaces:
    root: Path
    cache: Path


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory: pytest.TempPathFactory) -> TinyFaces:
    """Generated natural faces and their box cache (boxes from a fake teacher detector)."""
    import json

    from models.classifier.face_boxes import build_cache

    root = make_tiny_faces(tmp_path_factory.mktemp("faces-gender"))
    cache = tmp_path_factory.mktemp("data") / "boxes.json"
    cache.write_text(json.dumps({"detector": "fake", "files": build_cache(root, fake_teacher)}))
    return TinyFaces(root, cache)
