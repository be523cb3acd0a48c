"""Harder composites: crowds of small faces, occlusion, low light and blur, all reproducible and optional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.detector.hard_cases import darken, degrade_image, occlude_face
from models.detector.synthesize import CompositeRecipe, composite
from tests.support.images import draw_face_crops


def test_without_degradations_the_image_is_returned_unchanged() -> None:
    image = Image.new("RGB", (32, 32), (200, 100, 50))
    assert degrade_image(image, np.random.default_rng(0), 0.0, 0.0) is image


def test_low_light_darkens_the_image() -> None:
    image = Image.new("RGB", (64, 64), (180, 160, 140))
    assert np.asarray(darken(image, np.random.default_rng(1))).mean() < 0.7 * np.asarray(image).mean()


def test_an_occlusion_covers_part_of_the_face_and_leaves_the_rest() -> None:
    canvas = Image.new("RGB", (100, 100), (0, 0, 0))
    occlude_face(canvas, (20.0, 20.0, 80.0, 80.0), np.random.default_rng(3))
    inside = np.asarray(canvas)[20:80, 20:80].any(axis=2)  # (60, 60) pixels painted over
    assert 0.2 < inside.mean() < 0.8


def test_crowd_composites_hold_many_small_faces(tmp_path: Path) -> None:
    faces = sorted(draw_face_crops(tmp_path / "faces").rglob("*.png"))
    recipe = CompositeRecipe(size=256, crowd_probability=1.0, crowd_faces=(12, 12), empty_fraction=0.0, max_overlap=1.0)
    _, boxes = composite(0, 0, faces, [], recipe)
    sides = [min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes]
    assert len(boxes) == 12 and max(sides) <= 48 / 640 * 256 * 1.3


def test_hard_composites_are_reproducible_from_seed_and_index(tmp_path: Path) -> None:
    faces = sorted(draw_face_crops(tmp_path / "faces").rglob("*.png"))
    recipe = CompositeRecipe(size=96, occlusion_probability=1.0, low_light_probability=0.5, image_blur_probability=0.5)
    first, second = composite(5, 1, faces, [], recipe), composite(5, 1, faces, [], recipe)
    assert first[1] == second[1] and np.array_equal(np.asarray(first[0]), np.asarray(second[0]))
