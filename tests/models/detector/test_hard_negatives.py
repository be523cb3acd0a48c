"""Hard negatives: the student's boxes that no teacher face explains become background views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.detector.hard_negatives import MIN_CROP, context_crop, false_faces, write_hard_negatives
from models.detector.real_photos import LabelPolicy, PhotoCounts
from models.detector.teacher import FaceTeacher


def test_only_student_boxes_overlapping_no_teacher_face_are_false() -> None:
    student = np.array([[0, 0, 40, 40], [200, 200, 240, 240]], dtype=float)
    teacher = np.array([[2, 2, 42, 42]], dtype=float)
    np.testing.assert_array_equal(false_faces(student, teacher), [[200, 200, 240, 240]])
    assert len(false_faces(student, np.zeros((0, 4)))) == 2


def test_the_context_crop_holds_the_box_and_stays_inside_the_photo() -> None:
    left, top, right, bottom = context_crop(np.array([600.0, 10.0, 630.0, 40.0]), 640, 480)
    assert right - left == MIN_CROP and bottom - top == MIN_CROP
    assert 0 <= left <= 600 and right <= 640 and top == 0


class NoFaceTeacher(FaceTeacher):
    def __init__(self) -> None:
        super().__init__(session=None, width=64, height=48, name="none")

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        return {"scores": np.zeros((1, 0, 2), np.float32), "boxes": np.zeros((1, 0, 4), np.float32)}


def test_a_false_face_becomes_an_unlabelled_training_view(tmp_path: Path) -> None:
    photo = tmp_path / "street.jpg"
    Image.new("RGB", (400, 300), (120, 90, 60)).save(photo)
    counts = PhotoCounts()
    student = lambda image: np.array([[100.0, 100.0, 140.0, 140.0]])  # noqa: E731
    write_hard_negatives(tmp_path / "out", NoFaceTeacher(), student, photo, "street", LabelPolicy(), counts)
    assert (tmp_path / "out/labels/train/street_hn0.txt").read_text() == ""
    with Image.open(tmp_path / "out/images/train/street_hn0.jpg") as view:
        assert view.size == (MIN_CROP, MIN_CROP)
    assert counts.views == 1 and counts.faces == 0
