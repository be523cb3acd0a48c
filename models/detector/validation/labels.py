"""Which photos validate the detectors, and their boxes: the teacher's, tiled, in the face-boxes framing.

The photos are those ``detector-mixed`` always held out of training (its stable split by file name,
``is_validation``, 10%): no detector of this project (v1 to v3) was trained on them. To them come the four
portraits of ``style-transfer/content``, never used for detector training. The teacher labels them with
tiling at its own input size (``models.detector.tiling``); a detection at ``FACE_SCORE`` or above is a face,
a weaker one (down to the teacher's floor) or a face under ``MIN_FACE_PX`` is an ``ignore`` region.
``corrections.json`` records what a person changed after looking at the contact sheets: photos dropped,
boxes moved between faces and ignore, boxes added.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.detector.pseudo_labels import BoxConvention, drop_nested
from models.detector.real_photos import is_validation
from models.detector.synthesize import find_images
from models.detector.teacher import FaceTeacher

FACE_SCORE = 0.7
MIN_FACE_PX = 10.0  # shorter side in the photo's pixels; smaller detections are ignore regions
HELD_OUT_FRACTION = 0.1  # detector-mixed's val_fraction: the photos it never trained on
PHOTO_FOLDERS = ("data/crowd-photos", "data/faces-gender/portraits", "data/style-corpus/photos")
# Two crowd photos moved out of training from now on (v2 and v3 were trained on them: their numbers there are
# optimistic, so reports give the never-seen subset too): 17.jpg alone is too few crowd faces to choose with.
MOVED_CROWDS = ("data/crowd-photos/25.jpg", "data/crowd-photos/26.jpg")
PORTRAITS = tuple(f"data/style-transfer/content/{name}.jpg" for name in ("avril", "blonde_girl", "brad_pitt", "lenna"))
CORRECTIONS = Path(__file__).resolve().parent / "corrections.json"


def validation_photos(shared: Path) -> list[str]:
    """Paths (relative to ``shared``) of the validation photos, sorted."""
    held_out = [
        path.relative_to(shared).as_posix()
        for path in find_images([shared / folder for folder in PHOTO_FOLDERS])
        if is_validation(path, HELD_OUT_FRACTION)
    ]
    extra = [p for p in (*MOVED_CROWDS, *PORTRAITS) if (shared / p).is_file()]
    return sorted({*held_out, *extra})


def seen_by_v3(name: str) -> bool:
    """Whether face-detector v2/v3 were trained on this validation photo (only the moved crowds)."""
    return name in MOVED_CROWDS


def rounded(boxes: np.ndarray) -> list[list[float]]:
    return [[round(float(v), 1) for v in box] for box in boxes.reshape(-1, 4)]


def label_photo(teacher: FaceTeacher, path: Path, convention: BoxConvention) -> dict[str, Any]:
    """A photo's faces and ignore regions, x1, y1, x2, y2 in its pixels, in the served framing."""
    with Image.open(path) as opened:
        photo = opened.convert("RGB")
    found = teacher.detect(photo)
    boxes = np.clip(convention.apply(found.boxes), 0, [photo.width, photo.height] * 2)
    short = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    sure = (found.scores >= FACE_SCORE) & (short >= MIN_FACE_PX)
    return {
        "size": [photo.width, photo.height],
        "faces": rounded(drop_nested(boxes[sure])),
        "ignore": rounded(boxes[~sure]),
    }


def apply_corrections(photos: dict[str, dict[str, Any]], corrections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What a person decided on the contact sheets: photos dropped; per photo, teacher faces dropped (not a
    face: an ear, a cat) or made ignore regions (ambiguous), ignore regions made faces, faces added."""
    for name in corrections.get("drop", {}):
        photos.pop(name, None)
    for name, change in corrections.get("edit", {}).items():
        entry = photos[name]
        faces, ignore = entry["faces"], entry["ignore"]
        to_ignore, dropped = set(change.get("faces_to_ignore", [])), set(change.get("drop_faces", []))
        promoted = set(change.get("ignore_to_faces", []))
        entry["faces"] = [box for i, box in enumerate(faces) if i not in to_ignore | dropped]
        entry["faces"] += [box for i, box in enumerate(ignore) if i in promoted] + change.get("add_faces", [])
        entry["ignore"] = [box for i, box in enumerate(ignore) if i not in promoted]
        entry["ignore"] += [box for i, box in enumerate(faces) if i in to_ignore]
        entry["corrected"] = change.get("note", "corrected by eye")
    return photos


def build_validation(shared: Path, teacher_onnx: Path, convention: BoxConvention) -> dict[str, Any]:
    """The whole document: teacher, rules, corrections and every photo's boxes."""
    teacher = FaceTeacher.from_onnx(teacher_onnx)
    photos = {
        name: {**label_photo(teacher, shared / name, convention), "seen_by_v3": seen_by_v3(name)}
        for name in validation_photos(shared)
    }
    corrections = json.loads(CORRECTIONS.read_text()) if CORRECTIONS.is_file() else {}
    photos = apply_corrections(photos, corrections)
    return {
        "data_root": "shared",
        "boxes": "x1, y1, x2, y2 in the photo's pixels, face-boxes framing",
        "teacher": {
            "file": teacher_onnx.relative_to(shared).as_posix(),
            "face_score": FACE_SCORE,
            "min_face_px": MIN_FACE_PX,
            "tiled": True,
            "convention": convention.as_dict(),
        },
        "photos_rule": f"detector-mixed's held-out {HELD_OUT_FRACTION:g} (never trained on), the 4 content "
        f"portraits, and crowds {', '.join(MOVED_CROWDS)} (v2/v3 trained on them; left out of training from now on)",
        "corrections": corrections,
        "counts": {
            "photos": len(photos),
            "faces": sum(len(p["faces"]) for p in photos.values()),
            "ignore": sum(len(p["ignore"]) for p in photos.values()),
        },
        "photos": photos,
    }


def read_validation(boxes_json: Path) -> dict[str, dict[str, Any]]:
    """``{path relative to the shared root: {"size", "faces", "ignore"}}``."""
    return dict(json.loads(boxes_json.read_text())["photos"])
