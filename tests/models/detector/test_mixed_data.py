"""The mixed data set on tiny generated data: a fake teacher labels photos, composites are adjusted, paths travel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.detector import mixed
from models.detector.mixed import MixedSources, build_mixed_dataset, read_labels
from models.detector.pseudo_labels import GREY
from models.detector.real_photos import LabelPolicy, PhotoCounts, random_view, write_photo_views
from models.detector.synthesize import CompositeRecipe
from models.detector.teacher import TeacherDetections
from tests.support.images import draw_face_crops

SURE, UNSURE = (20.0, 20.0, 60.0, 60.0), (100.0, 20.0, 130.0, 50.0)  # in a 160×120 photo


class FakeTeacher:
    """Sees a sure face and an unsure one at fixed fractions of any image."""

    name = "fake.onnx"

    def detect(self, image: Image.Image) -> TeacherDetections:
        fractions = np.array(
            [[s / 160 if k % 2 == 0 else s / 120 for k, s in enumerate(box)] for box in (SURE, UNSURE)]
        )
        scale = np.array([image.width, image.height] * 2)
        return TeacherDetections(fractions * scale, np.array([0.95, 0.5]))


def photo(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (160, 120), colour).save(path)
    return path


def test_a_labelled_photo_keeps_the_sure_face_and_greys_the_unsure_one(tmp_path: Path) -> None:
    counts = PhotoCounts()
    policy = LabelPolicy(size=160, views=1)
    write_photo_views(tmp_path, FakeTeacher(), photo(tmp_path / "in" / "a.png"), "a", policy, 0.0, 0, counts)  # type: ignore[arg-type]
    image = Image.open(tmp_path / "images" / "train" / "a_0.jpg")
    boxes = read_labels(tmp_path / "labels" / "train" / "a_0.txt", *image.size)
    np.testing.assert_allclose(boxes, [SURE], atol=0.01)
    assert np.allclose(image.getpixel((115, 35)), GREY, atol=6) and image.getpixel((40, 40))[0] > 150
    assert (counts.photos, counts.views, counts.faces, counts.ignored) == (1, 1, 1, 1)


def test_a_random_view_moves_the_boxes_with_the_pixels() -> None:
    image = Image.new("RGB", (200, 160), (0, 0, 0))
    image.paste((255, 255, 255), (60, 40, 100, 80))
    for seed in range(6):
        view, boxes, _ = random_view(image, np.array([[60.0, 40.0, 100.0, 80.0]]), np.random.default_rng(seed), 4)
        for x1, y1, x2, y2 in boxes:
            centre = view.getpixel((int((x1 + x2) / 2), int((y1 + y2) / 2)))
            assert centre[0] > 200, f"seed {seed}: the box left the white square"


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    root = tmp_path / "shared"
    draw_face_crops(root / "data" / "faces")
    photo(root / "data" / "photos" / "people.png")
    photo(root / "data" / "backgrounds" / "street.png", (40, 90, 140))
    (root / "data" / "teacher.onnx").write_bytes(b"fake weights")
    return root


def test_the_mixed_data_set_records_teacher_counts_and_relative_paths(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixed.FaceTeacher, "from_onnx", classmethod(lambda cls, path: FakeTeacher()))
    sources = MixedSources(
        shared=shared,
        teacher=shared / "data" / "teacher.onnx",
        photos=[shared / "data" / "photos"],
        backgrounds=[shared / "data" / "backgrounds"],
        faces={"drawn": shared / "data" / "faces"},
    )
    recipe = CompositeRecipe(size=96, face_side=(0.2, 0.4))
    data_yaml = build_mixed_dataset(tmp_path / "out", sources, 4, LabelPolicy(size=160), recipe, progress=False)
    record = json.loads((data_yaml.parent / "recipe.json").read_text())
    assert record["kind"] == "mixed" and record["teacher"]["file"] == "data/teacher.onnx"
    assert record["teacher"]["keep_score"] == 0.8 and len(record["teacher"]["sha256"]) == 64
    assert record["backgrounds"] == {"accepted": [], "rejected": ["data/backgrounds/street.png"]}
    assert record["photos"]["data/photos"]["faces"] >= 1
    assert str(tmp_path) not in json.dumps(record), "the recipe must not hold this machine's paths"
    assert "composites-drawn/images/train" in data_yaml.read_text()
    assert len(list((data_yaml.parent / "composites-drawn" / "images" / "train").glob("*.jpg"))) == 4
