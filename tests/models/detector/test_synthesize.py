"""Synthetic detector data: labels box exactly the pasted faces, and the data set is reproducible."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from models.detector.synthesize import (
    CompositeRecipe,
    face_free_shared_backgrounds,
    split_faces_by_identity,
    synthesize_dataset,
)
from tests.support.images import draw_face_crops

# No colour jitter or blur, so a face pixel stays bright on the black background; rotation stays on.
PLAIN = CompositeRecipe(
    size=128,
    face_side=(0.15, 0.35),
    empty_fraction=0.0,
    max_overlap=0.0,
    photo_fraction=1.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    blur_probability=0.0,
    grayscale_probability=0.0,
    jpeg_quality=(95, 95),
)


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    return draw_face_crops(tmp_path / "faces")


@pytest.fixture
def black_photo(tmp_path: Path) -> Path:
    path = tmp_path / "backgrounds" / "black.png"
    path.parent.mkdir()
    Image.new("RGB", (200, 160), (0, 0, 0)).save(path)
    return path


def read_boxes(label: Path, size: int) -> list[tuple[float, float, float, float]]:
    boxes = []
    for line in label.read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        assert cls == "0" and all(0 <= float(v) <= 1 for v in (cx, cy, w, h)), line
        x, y, w_px, h_px = (float(v) * size for v in (cx, cy, w, h))
        boxes.append((x - w_px / 2, y - h_px / 2, x + w_px / 2, y + h_px / 2))
    return boxes


def examples(root: Path, split: str = "train") -> list[tuple[Path, Path]]:
    images = sorted((root / "images" / split).glob("*.jpg"))
    return [(image, root / "labels" / split / f"{image.stem}.txt") for image in images]


def test_each_label_box_is_the_tight_box_of_a_pasted_face(tmp_path: Path, faces: Path, black_photo: Path) -> None:
    root = tmp_path / "data"
    synthesize_dataset(root, faces, [black_photo], count=6, recipe=PLAIN, val_fraction=0.0, progress=False)
    pasted = 0
    for image_path, label_path in examples(root):
        face_pixels = np.asarray(Image.open(image_path).convert("L")) > 60  # (H, W) on black
        boxes = read_boxes(label_path, PLAIN.size)
        covered = np.zeros_like(face_pixels)
        for x1, y1, x2, y2 in boxes:
            covered[max(0, round(y1) - 1) : round(y2) + 1, max(0, round(x1) - 1) : round(x2) + 1] = True
            ys, xs = np.nonzero(face_pixels[round(y1) : round(y2), round(x1) : round(x2)])
            assert ys.size, f"{image_path.name}: box {x1, y1, x2, y2} holds no face pixel"
            tight = (x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1)
            assert tight == pytest.approx((x1, y1, x2, y2), abs=2.0), image_path.name
        assert not (face_pixels & ~covered).any(), f"{image_path.name}: face pixels outside every box"
        pasted += len(boxes)
    assert pasted >= 6, "the recipe pastes at least one face per image"


def test_same_seed_gives_the_same_bytes_and_a_rerun_remakes_only_what_is_missing(tmp_path: Path, faces: Path) -> None:
    recipe = dataclasses.replace(PLAIN, size=64, brightness=0.3, blur_probability=0.5)
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        synthesize_dataset(root, faces, (), count=5, recipe=recipe, val_fraction=0.2, seed=7, progress=False)
    pairs = [
        (a, b)
        for split in ("train", "val")
        for a, b in zip(examples(first, split), examples(second, split), strict=True)
    ]
    assert len(pairs) == 5
    assert all(a.read_bytes() == b.read_bytes() for pair in pairs for a, b in zip(*pair, strict=True))
    removed, kept = examples(first)[0][0], examples(first)[1][0]
    expected, kept_time = removed.read_bytes(), kept.stat().st_mtime_ns
    removed.unlink()
    synthesize_dataset(first, faces, (), count=5, recipe=recipe, val_fraction=0.2, seed=7, progress=False)
    assert removed.read_bytes() == expected and kept.stat().st_mtime_ns == kept_time


def test_parallel_workers_write_the_same_data_set_as_one_process(tmp_path: Path, faces: Path) -> None:
    recipe = dataclasses.replace(PLAIN, size=48)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    synthesize_dataset(serial, faces, (), count=40, recipe=recipe, val_fraction=0.0, workers=1, progress=False)
    synthesize_dataset(parallel, faces, (), count=40, recipe=recipe, val_fraction=0.0, workers=2, progress=False)
    for (image_a, label_a), (image_b, label_b) in zip(examples(serial), examples(parallel), strict=True):
        assert image_a.read_bytes() == image_b.read_bytes() and label_a.read_text() == label_b.read_text()


def test_adding_to_a_folder_made_with_another_recipe_is_refused(tmp_path: Path, faces: Path) -> None:
    synthesize_dataset(tmp_path / "data", faces, (), count=2, recipe=PLAIN, progress=False)
    with pytest.raises(FileExistsError, match="another recipe"):
        synthesize_dataset(tmp_path / "data", faces, (), count=2, recipe=PLAIN, seed=1, progress=False)


def test_face_free_images_have_empty_label_files_and_data_yaml_names_one_class(tmp_path: Path, faces: Path) -> None:
    recipe = dataclasses.replace(PLAIN, empty_fraction=1.0, size=64)
    data_yaml = synthesize_dataset(tmp_path / "data", faces, (), count=4, recipe=recipe, progress=False)
    labels = [label for split in ("train", "val") for _, label in examples(tmp_path / "data", split)]
    assert len(labels) == 4 and all(label.read_text() == "" for label in labels)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: "face"} and Path(data["path"]).is_absolute()
    assert (Path(data["path"]) / data["train"]).is_dir() and (Path(data["path"]) / data["val"]).is_dir()


def test_validation_faces_belong_to_people_absent_from_training() -> None:
    faces = [Path(f"Person_{p}") / f"Person_{p}_{k}.jpg" for p in range(200) for k in range(3)]
    train, val = split_faces_by_identity(faces, 0.1)
    assert len(train) + len(val) == len(faces) and 0.03 < len(val) / len(faces) < 0.2
    assert not {f.parent.name for f in train} & {f.parent.name for f in val}


@pytest.mark.shared
def test_shared_backgrounds_are_only_the_hand_checked_face_free_images(shared_dir: Path) -> None:
    backgrounds = face_free_shared_backgrounds(shared_dir / "data" / "style-transfer")
    names = {path.stem for path in backgrounds}
    assert len(backgrounds) >= 10 and all(path.is_file() for path in backgrounds)
    assert not names & {
        "avril",
        "blonde_girl",
        "brad_pitt",
        "lenna",
        "picasso_self_portrait",
        "sketch",
        "la_muse",
    }
