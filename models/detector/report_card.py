"""The detector's model card from a ``detector_report``: operating point, sweep, teacher, PR curve, pictures.

Pictures: detections at the shipped point drawn on the nine face-boxes photos (hand-drawn boxes in green)
and on a few group photos (no ground truth: count by eye). They show ../shared's photos, so they go into a
figures folder outside the artifact (``models/figures.py``) and the card lists what each one shows; the
precision-recall chart stays beside the card. Failure cases are listed from the matching itself: every missed
face with its size, every false detection with its score, and the portraits that did not get exactly one box.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.detector.evaluate import CARD_NAME, PR_CURVE_PNG, ImageResult, box_iou, draw_detections
from models.detector.report import sweep_table
from models.detector.types import Detection, DetectRequest
from models.figures import drop_from_artifact, not_shipped

Predict = Any  # a predictor's ``predict``: list[DetectRequest] -> list[list[Detection]]
REPORT_COMMAND = "deepcanvas eval detector-report ARTIFACT BOXES --card DIR --group-photos PHOTO"


def plot_curves(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.6, 3.8), dpi=120)
    curve = report["pr_curve"]
    axes.plot(curve["recall"], curve["precision"], label=f"{report['model']} (AP {report['all']['ap']:.3f})")
    if "teacher" in report:
        teacher = report["teacher"]
        label = f"teacher {teacher['file']} (AP {teacher['all']['ap']:.3f})"
        axes.plot(teacher["pr_curve"]["recall"], teacher["pr_curve"]["precision"], "--", label=label)
    point = report["all"]
    axes.plot([point["recall"]], [point["precision"]], "o", label=f"shipped: conf {point['conf']:.2f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="face-boxes, all 9 photos")
    axes.legend(loc="lower left", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def failure_cases(results: Sequence[ImageResult], conf: float) -> list[str]:
    """Misses and false detections at ``conf`` (IoU 0.5, one detection per face), one line each."""
    lines = []
    for result in results:
        kept = result.scores >= conf
        boxes, scores = result.boxes[kept], result.scores[kept]
        overlaps = box_iou(boxes, result.ground_truth)  # (D, G)
        claimed = np.zeros(len(result.ground_truth), dtype=bool)
        false = []
        for d in range(len(boxes)):
            candidates = np.where(~claimed & (overlaps[d] >= 0.5))[0] if overlaps.shape[1] else np.zeros(0, int)
            if len(candidates):
                claimed[candidates[overlaps[d, candidates].argmax()]] = True
            else:
                false.append(d)
        for g in np.where(~claimed)[0]:
            x1, y1, x2, y2 = result.ground_truth[g]
            best = f", best IoU {overlaps[:, g].max():.2f}" if len(boxes) else ""
            lines.append(f"- {result.name}: missed a {x2 - x1:.0f}×{y2 - y1:.0f} px face at ({x1:.0f}, {y1:.0f}){best}")
        for d in false:
            x1, y1, x2, y2 = boxes[d]
            lines.append(f"- {result.name}: false detection {x2 - x1:.0f}×{y2 - y1:.0f} px, score {scores[d]:.2f}")
    return lines


def detect_photos(
    predict: Predict, photos: Sequence[Path], imgsz: int, conf: float, min_size: float = 0.0
) -> list[list[Detection]]:
    out = []
    for path in photos:
        with Image.open(path) as photo:
            request = DetectRequest(
                image=photo.convert("RGB"), conf=conf, iou=0.45, max_det=300, imgsz=imgsz, min_size=min_size
            )
            out.append(predict([request])[0])
    return out


def write_report_card(
    out_dir: Path,
    report: dict[str, Any],
    images: Path,
    predict: Predict,
    group_photos: Sequence[Path] = (),
    portraits: Sequence[Path] = (),
    header: Sequence[str] = (),
    *,
    figures: Path,
) -> Path:
    """Write ``MODEL_CARD.md`` and its precision-recall chart into ``out_dir`` (an artifact folder or any folder),
    and the detections drawn on the photos into ``figures``, never into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    point = report["operating_point"]
    lines = [f"# Model card: {report['model']}", "", *header, ""]
    lines += [
        "## Operating point",
        "",
        f"Chosen on the 4 `train` photos of face-boxes only: imgsz {point['imgsz']}, conf {point['conf']:.2f} "
        f"(best F1 {point['f1']:.3f} among sizes under {point['budget_ms']:g} ms for a 1280×720 photo on "
        f"{report['backend']}; this size: {point['latency_ms']:.1f} ms"
        + ("" if point["within_budget"] else "; no size met the budget on the measuring machine")
        + ").",
        "",
        f"Boxes whose shorter side is under {point.get('min_size', 0):g} px (in the photo's pixels) are dropped by "
        "default (`min_size`; 0 returns every box): face APIs commonly set such a floor (36–40 px on a full-HD "
        "photo for the large vendors), and face-boxes labels no face under 37 px, so a smaller box can only count "
        "as a false detection there. The table applies it; the numbers without it follow the results below.",
        "",
        *sweep_table(report["sweep"]),
        "",
        "## Results at the shipped defaults (IoU 0.5)",
        "",
        "| photos | model AP50 | precision | recall | TP / FP / FN | teacher AP50 | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in ("train", "test", "all"):
        m, t = report[split], report.get("teacher", {}).get(split)
        teacher = f"{t['ap']:.3f} | {t['precision']:.3f} | {t['recall']:.3f}" if t else "— | — | —"
        lines.append(
            f"| {split} ({m['n_images']} photos, {m['n_faces']} faces) | {m['ap']:.3f} | {m['precision']:.3f} | "
            f"{m['recall']:.3f} | {m['tp']} / {m['fp']} / {m['fn']} | {teacher} |"
        )
    for split, m in report.get("without_min_size", {}).items():
        lines.append(
            f"| {split}, min_size 0 | {m['ap']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{m['tp']} / {m['fp']} / {m['fn']} | — | — | — |"
        )
    if "teacher" in report:
        lines += ["", f"Teacher: {report['teacher']['file']} at conf {report['teacher']['conf_chosen_on_train']:.2f}"]
        lines += ["(chosen on the train photos the same way), its own box framing, scores below 0.3 not kept."]
    plot_curves(report, out_dir / PR_CURVE_PNG)
    lines += ["", f"![precision-recall curve]({PR_CURVE_PNG})", "", "## Failure cases (all 9 photos)", ""]
    lines += failure_cases(report["results"]["all"], point["conf"]) or ["- none at the shipped defaults"]
    if portraits:
        found = detect_photos(predict, portraits, point["imgsz"], point["conf"], point.get("min_size", 0.0))
        counts = [len(d) for d in found]
        lines += ["", "## Portraits (one face each)", ""]
        lines += [f"- {p.stem}: {n} box{'es' if n != 1 else ''}" for p, n in zip(portraits, counts, strict=True)]
    lines += ["", "## Detections", "", "Green: hand-drawn boxes. Red: detections at the shipped defaults.", ""]
    figures.mkdir(parents=True, exist_ok=True)
    drawn_names = []
    for result in report["results"]["all"]:
        with Image.open(images / result.name) as photo:
            name = f"sample_{Path(result.name).stem}.png"
            draw_detections(photo, result, point["conf"]).save(figures / name)
        drawn_names.append(name)
        lines.append(f"- `{name}`: {result.name}")
    group = detect_photos(predict, group_photos, point["imgsz"], point["conf"], point.get("min_size", 0.0))
    for path, detections in zip(group_photos, group, strict=True):
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in detections], dtype=np.float64)
        with Image.open(path) as photo:
            empty = np.zeros((0, 4))
            drawn = draw_detections(photo, ImageResult(path.name, empty, boxes, scores), point["conf"])
            drawn.thumbnail((1024, 1024))
            drawn.save(figures / f"group_{path.stem}.png")
        drawn_names.append(f"group_{path.stem}.png")
        lines.append(f"- `group_{path.stem}.png`: group photo {path.name}, {len(detections)} faces found")
    drop_from_artifact(out_dir, drawn_names)
    if drawn_names:
        lines += ["", not_shipped(drawn_names, REPORT_COMMAND, str(report["model"]))]
    path = out_dir / CARD_NAME
    path.write_text("\n".join(lines) + "\n")
    return path
