"""The mixed detector data set: real photos labelled by a teacher, plus harder composites, in one YOLO layout.

    OUT/real/{images,labels}/{train,val}        teacher-labelled photos (validation: real photos only)
    OUT/composites-<faces>/{images,labels}/train one composite set per face source (LFW3D, natural crops)
    OUT/data.yaml, OUT/recipe.json

Every box is put in the evaluation's convention (the hand-drawn ``face-boxes``): the teacher's through a
convention fitted on the ``train`` photos of face-boxes only, each composite set's through one fitted
against the (converted) teacher on its own images. Backgrounds are checked by the teacher too: one with
any detection above ``BACKGROUND_REJECT`` is left out. The recipe records paths relative to the shared
data root, the teacher's file, hash, thresholds, every count and every convention measurement.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console

from models.detector.evaluate import read_boxes
from models.detector.hard_negatives import student_from_artifact, write_hard_negatives
from models.detector.pseudo_labels import BoxConvention, convention_report, fit_convention, match_pairs
from models.detector.real_photos import YOLO_VAL_SALT, LabelPolicy, PhotoCounts, is_validation, write_photo_views
from models.detector.synthesize import (
    RECIPE_FILE,
    CompositeRecipe,
    face_free_shared_backgrounds,
    find_images,
    relative_paths,
    synthesize_dataset,
    write_atomically,
)
from models.detector.teacher import FaceTeacher
from models.provenance import portable_path

console = Console(stderr=True)
BACKGROUND_REJECT = 0.5  # a background with a teacher detection this sure may hold a face: left out
ADJUSTED_MARKER = "labels_adjusted.json"  # written once a composite set's labels are in the evaluation convention

# Faces down to 12 px at 640, a fifth of the images crowds, occlusion, low light, blur and strong JPEG.
HARD_RECIPE = CompositeRecipe(
    size=640,
    faces_per_image=(1, 10),
    face_side=(12 / 640, 330 / 640),
    max_rotation_deg=15.0,
    jpeg_quality=(35, 95),
    crowd_probability=0.2,
    occlusion_probability=0.2,
    low_light_probability=0.15,
    image_blur_probability=0.15,
)


@dataclass(frozen=True)
class MixedSources:
    """Where everything comes from; ``shared`` is the data root every recorded path is relative to."""

    shared: Path
    teacher: Path
    photos: list[Path]  # folders of real photos to label
    backgrounds: list[Path]  # folders of candidate backgrounds, checked by the teacher
    faces: dict[str, Path]  # face crops per composite set
    boxes_json: Path | None = None  # face-boxes, for the teacher's convention (train photos only)
    hand_checked_backgrounds: list[Path] = field(default_factory=list)
    held_out: set[str] = field(default_factory=set)  # validation photos (relative to ``shared``): never written
    hard_negatives_from: Path | None = None  # a detector artifact whose false faces become training views
    mine_in: list[Path] = field(default_factory=list)  # photo folders mined for them (scenes and crowds)

    @classmethod
    def from_shared(
        cls, shared: Path, teacher: Path | None = None, hard_negatives_from: Path | None = None
    ) -> MixedSources:
        """The layout of ``../shared``: what the issue lists, and nothing evaluated on (the validation set)."""
        from models.detector.validation.labels import validation_photos

        data = shared / "data"
        photos = [
            data / "crowd-photos",
            data / "faces-gender" / "portraits",
            *sorted((data / "style-corpus" / "photos").iterdir()),
        ]
        return cls(
            shared=shared,
            teacher=teacher or data / "weights" / "ultralight-face-rfb" / "version-RFB-640.onnx",
            photos=[p for p in photos if p.is_dir()],
            backgrounds=[
                data / "style-corpus" / "photos" / "Urban100",
                data / "style-corpus" / "photos" / "Sun-Hays80",
            ],
            faces={"lfw3d": data / "lfw3d" / "images", "natural": data / "faces-gender" / "crops"},
            boxes_json=data / "face-boxes" / "boxes.json",
            hand_checked_backgrounds=face_free_shared_backgrounds(data / "style-transfer"),
            held_out=set(validation_photos(shared)),
            hard_negatives_from=hard_negatives_from,
            mine_in=[p for p in photos if p.is_dir() and p.parent.name != "faces-gender"],  # not stock portraits
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def teacher_convention(
    teacher: FaceTeacher, boxes_json: Path | None, keep: float
) -> tuple[BoxConvention, dict[str, Any]]:
    """The convention from teacher boxes to face-boxes, fitted on its ``train`` photos, checked on all of them."""
    if boxes_json is None or not boxes_json.is_file():
        return BoxConvention(), {"measured": False}
    pairs: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {"train": ([], []), "all": ([], [])}
    splits = json.loads(boxes_json.read_text())
    for name, truth in read_boxes(boxes_json).items():
        with Image.open(boxes_json.parent / "images" / name) as photo:
            detections = teacher.detect(photo.convert("RGB"))
        sure = detections.boxes[detections.scores >= keep]
        for i, j in match_pairs(sure, truth):
            for split in {"all", splits[name]["split"]} & pairs.keys():
                pairs[split][0].append(sure[i])
                pairs[split][1].append(truth[j])
    train_source, train_target = (np.array(side).reshape(-1, 4) for side in pairs["train"])
    all_source, all_target = (np.array(side).reshape(-1, 4) for side in pairs["all"])
    fitted = fit_convention(train_source, train_target)
    report = {"measured": True, "fitted_on": "face-boxes train photos", "convention": fitted.as_dict()}
    report |= {"train": convention_report(train_source, train_target, fitted)}
    report |= {"all": convention_report(all_source, all_target, fitted)}
    return fitted, report


def checked_backgrounds(teacher: FaceTeacher, sources: MixedSources) -> tuple[list[Path], list[Path]]:
    """(accepted, rejected) candidate backgrounds: rejected when the teacher sees anything face-like."""
    accepted: list[Path] = []
    rejected: list[Path] = []
    for path in [*find_images(sources.backgrounds), *sources.hand_checked_backgrounds]:
        with Image.open(path) as photo:
            scores = teacher.detect(photo.convert("RGB")).scores
        (rejected if len(scores) and scores.max() >= BACKGROUND_REJECT else accepted).append(path)
    return accepted, rejected


def read_labels(label: Path, width: int, height: int) -> np.ndarray:
    """A YOLO label file -> (N, 4) x1, y1, x2, y2 pixels."""
    values = [float(v) for v in label.read_text().split()]
    rows = np.array(values).reshape(-1, 5)[:, 1:] * np.array([width, height, width, height])  # (N, 4) cx, cy, w, h
    return np.concatenate([rows[:, :2] - rows[:, 2:] / 2, rows[:, :2] + rows[:, 2:] / 2], axis=1)


def composite_convention(
    teacher: FaceTeacher, root: Path, to_eval: BoxConvention, sample: int, keep: float
) -> tuple[BoxConvention, dict[str, Any]]:
    """The convention from a composite set's boxes to the evaluation's, via sure teacher boxes on ``sample`` images."""
    source, target = [], []
    for image_path in sorted((root / "images" / "train").glob("*.jpg"))[:sample]:
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
        labels = read_labels(root / "labels" / "train" / f"{image_path.stem}.txt", *image.size)
        detections = teacher.detect(image)
        sure = to_eval.apply(detections.boxes[detections.scores >= keep])
        sure = sure[np.minimum(sure[:, 2] - sure[:, 0], sure[:, 3] - sure[:, 1]) >= 20]  # small: unsure framing
        for i, j in match_pairs(labels, sure):
            source.append(labels[i])
            target.append(sure[j])
    source_array, target_array = np.array(source).reshape(-1, 4), np.array(target).reshape(-1, 4)
    if len(source_array) < 10:
        return BoxConvention(), {"measured": False, "pairs": len(source_array)}
    fitted = fit_convention(source_array, target_array)
    report = {"measured": True, "fitted_on": f"{sample} composites vs teacher boxes in the face-boxes convention"}
    return fitted, report | {"convention": fitted.as_dict(), **convention_report(source_array, target_array, fitted)}


def adjust_labels(root: Path, convention: BoxConvention, report: dict[str, Any]) -> None:
    """Rewrite a composite set's labels in the evaluation convention, once (a marker file records it)."""
    marker = root / ADJUSTED_MARKER
    if marker.is_file():
        return
    for label in sorted((root / "labels" / "train").glob("*.txt")):
        with Image.open(root / "images" / "train" / f"{label.stem}.jpg") as image:
            width, height = image.size
        boxes = np.clip(convention.apply(read_labels(label, width, height)), 0, [width, height, width, height])
        boxes = boxes[(boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)]
        centre, side = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
        rows = np.concatenate([centre, side], axis=1) / np.array([width, height, width, height])
        write_atomically(label, "".join("0 " + " ".join(f"{v:.6f}" for v in row) + "\n" for row in rows).encode())
    write_atomically(marker, json.dumps(report, indent=2).encode())


def write_mixed_yaml(out: Path, composite_sets: Sequence[str]) -> Path:
    train = ["real/images/train", *(f"{name}/images/train" for name in composite_sets)]
    text = (
        f"path: {json.dumps(str(out.resolve()))}\ntrain: {json.dumps(train)}\nval: real/images/val\nnames:\n  0: face\n"
    )
    path = out / "data.yaml"
    write_atomically(path, text.encode())
    return path


def build_mixed_dataset(
    out: Path,
    sources: MixedSources,
    composites: int = 1500,
    policy: LabelPolicy | None = None,
    recipe: CompositeRecipe | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Label, check, synthesize and adjust; write ``data.yaml`` and ``recipe.json``; return ``data.yaml``."""
    policy = policy or LabelPolicy()
    recipe = recipe or dataclasses.replace(HARD_RECIPE, size=policy.size)
    teacher = FaceTeacher.from_onnx(sources.teacher)
    out.mkdir(parents=True, exist_ok=True)
    to_eval, teacher_report = teacher_convention(teacher, sources.boxes_json, policy.keep)
    policy = dataclasses.replace(policy, convention=to_eval)
    console.print(f"teacher -> face-boxes convention: {teacher_report}")
    accepted, rejected = checked_backgrounds(teacher, sources)
    console.print(f"backgrounds: {len(accepted)} accepted, {len(rejected)} rejected by the teacher")
    composite_reports: dict[str, Any] = {}
    for name, face_dir in sources.faces.items():
        root = out / f"composites-{name}"
        synthesize_dataset(
            root, face_dir, accepted, composites, recipe, 0.0, seed, workers, progress, data_root=sources.shared
        )
        convention, report = composite_convention(teacher, root, to_eval, sample=150, keep=policy.keep)
        adjust_labels(root, convention, report)
        composite_reports[name] = json.loads((root / ADJUSTED_MARKER).read_text())
        composite_reports[name]["recipe"] = json.loads((root / RECIPE_FILE).read_text())
        console.print(f"composites-{name}: {report}")
    photo_counts: dict[str, PhotoCounts] = {}
    student = student_from_artifact(sources.hard_negatives_from) if sources.hard_negatives_from else None
    for folder in sources.photos:
        counts = photo_counts.setdefault(relative_paths([folder], sources.shared)[0], PhotoCounts())
        negatives = photo_counts.setdefault(f"hard negatives: {counts_key(folder, sources)}", PhotoCounts())
        for path in find_images([folder]):
            if relative_paths([path], sources.shared)[0] in sources.held_out:
                continue  # a validation photo: never a training or a YOLO-val view
            stem = f"{folder.name}-{path.stem}"
            write_photo_views(out / "real", teacher, path, stem, policy, val_fraction, seed, counts)
            yolo_val = is_validation(path, val_fraction, YOLO_VAL_SALT)
            if student is not None and folder in sources.mine_in and not yolo_val:
                write_hard_negatives(out / "real", teacher, student, path, stem, policy, negatives)
        console.print(f"{folder.name}: {counts}; hard negatives {negatives}")
    record = mixed_record(sources, policy, composites, val_fraction, seed, teacher_report, composite_reports)
    record |= {"photos": {k: dataclasses.asdict(v) for k, v in photo_counts.items()}}
    record |= {
        "backgrounds": {
            "accepted": relative_paths(accepted, sources.shared),
            "rejected": relative_paths(rejected, sources.shared),
        }
    }
    record["summary"] = summary(record)
    write_atomically(out / RECIPE_FILE, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return write_mixed_yaml(out, [f"composites-{name}" for name in sources.faces])


def counts_key(folder: Path, sources: MixedSources) -> str:
    return relative_paths([folder], sources.shared)[0]


def mixed_record(
    sources: MixedSources,
    policy: LabelPolicy,
    composites: int,
    val_fraction: float,
    seed: int,
    teacher_report: dict[str, Any],
    composite_reports: dict[str, Any],
) -> dict[str, Any]:
    teacher = {
        "file": relative_paths([sources.teacher], sources.shared)[0],
        "sha256": file_sha256(sources.teacher),
        "keep_score": policy.keep,
        "ignore_min_side_px": policy.min_side,
        "background_reject_score": BACKGROUND_REJECT,
        "convention_to_face_boxes": teacher_report,
    }
    return {
        "kind": "mixed",
        "data_root": sources.shared.resolve().name,
        "teacher": teacher,
        "size": policy.size,
        "views_per_train_photo": policy.views,
        "val_fraction": val_fraction,
        "seed": seed,
        "composites_per_face_set": composites,
        "composites": composite_reports,
        "faces": ", ".join(relative_paths(list(sources.faces.values()), sources.shared)),
        "held_out_validation_photos": len(sources.held_out),
        "hard_negatives_from": portable_path(sources.hard_negatives_from) if sources.hard_negatives_from else None,
    }


def summary(record: dict[str, Any]) -> str:
    """One line for the provenance."""
    photos = sum(c["photos"] for c in record["photos"].values())
    faces = sum(c["faces"] for c in record["photos"].values())
    views = sum(c["views"] for c in record["photos"].values())
    negatives = sum(c["views"] for k, c in record["photos"].items() if k.startswith("hard negatives"))
    sets = ", ".join(record["composites"])
    mined = f"; {negatives} of the views around false faces of {record['hard_negatives_from']}" if negatives else ""
    return (
        f"{photos} real photos ({views} views, {faces} faces) labelled by the teacher "
        f"{Path(record['teacher']['file']).name} "
        f"at score >= {record['teacher']['keep_score']:g}, unsure and tiny detections greyed out{mined}; "
        f"{record['composites_per_face_set']} hard composites of {record['size']} px per face set ({sets}) on "
        f"{len(record['backgrounds']['accepted'])} teacher-checked backgrounds; boxes in the face-boxes convention; "
        f"{record.get('held_out_validation_photos', 0)} validation photos left out"
    )
