"""Real photos labelled by the teacher, written as YOLO training views (whole photo, crops, flips, scales).

Each photo is labelled once: the teacher's detections are mapped to the evaluation's box convention,
split into sure faces and regions to ignore, and the ignored regions greyed out. Then it is written as
``views`` images: the whole photo, and random crops (50-100% of each side, mirrored half the time, shrunk
by a random scale), so the same real faces appear at several sizes and positions. A face cut by a crop is
kept when most of it shows, and greyed out otherwise (half a face is neither a face nor background).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from models.detector.pseudo_labels import BoxConvention, grey_out, split_detections, visible_share
from models.detector.synthesize import Box, write_atomically
from models.detector.teacher import FaceTeacher

MIN_VISIBLE = 0.6  # a cropped face is kept when this share of it shows, greyed out otherwise


@dataclass(frozen=True)
class LabelPolicy:
    """Which teacher detections become faces; sides in pixels of the written view (longest side ``size``)."""

    keep: float = 0.8  # a face at this teacher score or above
    min_side: float = 8.0  # smaller faces are ignored: too few pixels to learn from, or to trust
    size: int = 640
    views: int = 2  # per training photo: the whole photo, then random crops
    convention: BoxConvention = field(default_factory=BoxConvention)


@dataclass
class PhotoCounts:
    photos: int = 0
    views: int = 0
    faces: int = 0  # sure faces over all views
    ignored: int = 0  # regions greyed out over all views
    photos_with_ignored: int = 0


def is_validation(path: Path, val_fraction: float, salt: str = "") -> bool:
    """A stable split by file name, the same on every machine (``salt`` draws another split of the same size).

    Unsalted, it is the split detector-mixed held out of training up to face-detector v3: those photos are now
    the detector validation set (``models.detector.validation``) and never written; the YOLO ``val`` folder,
    which only picks the best epoch, is drawn from the rest with ``YOLO_VAL_SALT``.
    """
    return zlib.crc32((salt + path.name).encode()) % 1000 < 1000 * val_fraction


YOLO_VAL_SALT = "yolo-val:"


def label_photo(teacher: FaceTeacher, photo: Image.Image, policy: LabelPolicy) -> tuple[Image.Image, np.ndarray, int]:
    """The photo shrunk to ``policy.size`` with uncertain regions greyed, its sure faces, and how many were greyed."""
    photo = photo.convert("RGB")
    detections = teacher.detect(photo)
    scale = min(1.0, policy.size / max(photo.size))
    if scale < 1:
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
    boxes = policy.convention.apply(detections.boxes) * scale
    faces, ignore = split_detections(boxes, detections.scores, policy.keep, policy.min_side)
    return photo, faces, grey_out(photo, ignore, faces)


def random_view(
    photo: Image.Image, faces: np.ndarray, rng: np.random.Generator, min_side: float
) -> tuple[Image.Image, np.ndarray, int]:
    """A random crop of 50-100% of each side, mirrored half the time, shrunk by 0.5-1; faces cut off are greyed."""
    width, height = photo.size
    crop_w, crop_h = width * rng.uniform(0.5, 1.0), height * rng.uniform(0.5, 1.0)
    left, top = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
    view = photo.crop((round(left), round(top), round(left + crop_w), round(top + crop_h)))
    shown = visible_share(faces, (round(left), round(top), round(left + crop_w), round(top + crop_h)))
    offset = np.array([round(left), round(top)] * 2)
    inside, cut = faces[shown >= MIN_VISIBLE] - offset, faces[(shown > 0) & (shown < MIN_VISIBLE)] - offset
    greyed = grey_out(view, cut, inside, grow=0.0)
    scale = rng.uniform(0.5, 1.0)
    view = view.resize(
        (max(1, round(view.width * scale)), max(1, round(view.height * scale))), Image.Resampling.BILINEAR
    )
    boxes = inside * scale
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
        boxes = np.stack([view.width - boxes[:, 2], boxes[:, 1], view.width - boxes[:, 0], boxes[:, 3]], axis=1)
    small = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < min_side
    greyed += grey_out(view, boxes[small], boxes[~small], grow=0.15)
    return view, boxes[~small].reshape(-1, 4), greyed


def write_view(root: Path, split: str, stem: str, image: Image.Image, boxes: np.ndarray) -> None:
    """An image and its YOLO label (boxes clipped to the image, normalised by width and height; empty: no face)."""
    clipped: list[Box] = []
    for x1, y1, x2, y2 in boxes.reshape(-1, 4).tolist():
        x1, x2 = max(0.0, x1), min(float(image.width), x2)
        y1, y2 = max(0.0, y1), min(float(image.height), y2)
        if x2 - x1 >= 2 and y2 - y1 >= 2:  # a sliver left by clipping is no face
            clipped.append((x1, y1, x2, y2))
    for kind in ("images", "labels"):
        (root / kind / split).mkdir(parents=True, exist_ok=True)
    w, h = image.size
    rows = [((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h) for x1, y1, x2, y2 in clipped]
    text = "".join("0 " + " ".join(f"{value:.6f}" for value in row) + "\n" for row in rows)
    write_atomically(root / "labels" / split / f"{stem}.txt", text.encode())
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    write_atomically(root / "images" / split / f"{stem}.jpg", buffer.getvalue())


def write_photo_views(
    root: Path,
    teacher: FaceTeacher,
    path: Path,
    stem: str,
    policy: LabelPolicy,
    val_fraction: float,
    seed: int,
    counts: PhotoCounts,
) -> None:
    """Label one photo and write its views (validation photos: the whole photo only)."""
    split = "val" if is_validation(path, val_fraction, YOLO_VAL_SALT) else "train"
    with Image.open(path) as opened:
        photo, faces, greyed = label_photo(teacher, opened, policy)
    counts.photos += 1
    views = [(photo, faces, greyed)]
    rng = np.random.default_rng([seed, zlib.crc32(stem.encode())])
    for _ in range(policy.views - 1 if split == "train" else 0):
        views.append(random_view(photo, faces, rng, policy.min_side))
    counts.photos_with_ignored += greyed > 0
    for k, (image, boxes, greyed_here) in enumerate(views):
        write_view(root, split, f"{stem}_{k}", image, boxes)
        counts.views += 1
        counts.faces += len(boxes)
        counts.ignored += greyed_here
