"""Hard negatives: a student detector's own false faces that the teacher rejects, as training views.

v3 finds faces on necks, spectacle lenses, shirts and windows. For each training photo, the student runs
on the labelled view (unsure regions already greyed); a student box that overlaps no sure teacher face is a
false face, and a crop around it (``CONTEXT`` times its side, at least ``MIN_CROP`` px) becomes a training
view whose labels are the teacher's faces that show in it (usually none): the student is shown its own
mistake as background. Faces cut by the crop are greyed, as in ``real_photos.random_view``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from models.detector.pseudo_labels import box_iou, grey_out, visible_share
from models.detector.real_photos import MIN_VISIBLE, LabelPolicy, PhotoCounts, label_photo, write_view
from models.detector.teacher import FaceTeacher

CONTEXT = 3.0
MIN_CROP = 160
MAX_PER_PHOTO = 3
FREE_IOU = 0.1  # a student box overlapping every sure teacher face by less than this is a false face

# photo -> (N, 4) student boxes in its pixels, best first
Student = Callable[[Image.Image], np.ndarray]


def false_faces(student_boxes: np.ndarray, teacher_faces: np.ndarray) -> np.ndarray:
    """The student's boxes that overlap no teacher face."""
    boxes = student_boxes.reshape(-1, 4)
    if not len(teacher_faces):
        return boxes
    return boxes[box_iou(boxes, teacher_faces.reshape(-1, 4)).max(axis=1) < FREE_IOU]


def context_crop(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """A square-ish crop of ``CONTEXT`` times the box's longer side around its centre, inside the photo."""
    side = max(MIN_CROP, CONTEXT * float(max(box[2] - box[0], box[3] - box[1])))
    crop_w, crop_h = min(width, side), min(height, side)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left = min(max(0.0, cx - crop_w / 2), width - crop_w)
    top = min(max(0.0, cy - crop_h / 2), height - crop_h)
    return round(left), round(top), round(left + crop_w), round(top + crop_h)


def write_hard_negatives(
    root: Path, teacher: FaceTeacher, student: Student, path: Path, stem: str, policy: LabelPolicy, counts: PhotoCounts
) -> None:
    """Up to ``MAX_PER_PHOTO`` views around the student's false faces on one training photo."""
    with Image.open(path) as opened:
        photo, faces, _ = label_photo(teacher, opened, policy)
    for k, box in enumerate(false_faces(student(photo), faces)[:MAX_PER_PHOTO]):
        crop = context_crop(box, photo.width, photo.height)
        view = photo.crop(crop)
        shown = visible_share(faces, crop)
        offset = np.array([crop[0], crop[1]] * 2)
        inside, cut = faces[shown >= MIN_VISIBLE] - offset, faces[(shown > 0) & (shown < MIN_VISIBLE)] - offset
        counts.ignored += grey_out(view, cut, inside, grow=0.0)
        write_view(root, "train", f"{stem}_hn{k}", view, inside)
        counts.views += 1
        counts.faces += len(inside)
        counts.photos_with_ignored += 1  # here: photos that gave hard negatives


def student_from_artifact(folder: Path, conf: float = 0.3) -> Student:
    """A served detector artifact as a miner: its own pipeline (tiling on), every box of 8 px or more."""
    from models.artifact import load_artifact
    from models.detector.predictor import FaceDetector
    from models.detector.types import DetectRequest
    from models.torch_backend import resolve_device

    manifest = load_artifact(folder)
    detector = FaceDetector.from_artifact(folder, manifest, resolve_device("cpu"))
    size = manifest.input.size if manifest.input else 640

    def detect(photo: Image.Image) -> np.ndarray:
        request = DetectRequest(photo, conf, 0.45, 100, size, min_size=8.0, tile="auto")
        return np.array([d.box for d in detector.predict([request])[0]], dtype=np.float64).reshape(-1, 4)

    return detect
