"""The operating point is chosen on train photos within a latency budget; the card lists failures and pictures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from models.artifact import Manifest, load_artifact
from models.detector.evaluate import ImageResult
from models.detector.report import apply_operating_point, choose_operating_point, sweep_rows
from models.detector.report_card import failure_cases, write_report_card
from models.detector.types import Detection, DetectRequest

TRUTH = np.array([[10.0, 10.0, 50.0, 50.0], [60.0, 10.0, 100.0, 50.0]])


def result(boxes: list[list[float]], scores: list[float], name: str = "a.jpg") -> ImageResult:
    return ImageResult(name, TRUTH, np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, dtype=float))


def row(imgsz: int, conf: float, f1: float, recall: float, latency: float) -> dict[str, float]:
    return {"imgsz": imgsz, "conf": conf, "f1": f1, "precision": f1, "recall": recall, "latency_ms": latency}


def test_the_sweep_counts_hits_per_confidence() -> None:
    rows = sweep_rows([result([[10, 10, 50, 50], [200, 200, 220, 220]], [0.9, 0.3])], 320, 12.0)
    at = {r["conf"]: r for r in rows}
    assert (at[0.25]["tp"], at[0.25]["fp"], at[0.25]["fn"]) == (1, 1, 1)
    assert (at[0.5]["tp"], at[0.5]["fp"]) == (1, 0) and at[0.5]["precision"] == 1.0 and at[0.5]["latency_ms"] == 12.0


def test_the_point_is_the_best_f1_among_sizes_within_the_budget() -> None:
    rows = [row(320, 0.5, 0.7, 0.6, 20), row(640, 0.4, 0.9, 0.9, 80), row(480, 0.3, 0.8, 0.8, 45)]
    point = choose_operating_point(rows, max_latency_ms=60)
    assert (point.imgsz, point.conf, point.within_budget) == (480, 0.3, True)
    slow = choose_operating_point(rows, max_latency_ms=5)
    assert (slow.imgsz, slow.within_budget) == (640, False)


def test_failure_cases_name_each_miss_and_each_false_detection() -> None:
    lines = failure_cases([result([[10, 10, 50, 50], [200, 200, 230, 220]], [0.9, 0.8])], conf=0.5)
    assert len(lines) == 2
    assert "missed a 40×40 px face at (60, 10)" in lines[0] and "false detection 30×20 px, score 0.80" in lines[1]


def fake_report(model: str = "face-detector/v-test") -> dict[str, object]:
    summary = {"n_images": 1, "n_faces": 2, "ap": 0.5, "conf": 0.5, "precision": 1.0, "recall": 0.5, "f1": 0.67}
    summary |= {"tp": 1, "fp": 0, "fn": 1}
    point = {"imgsz": 480, "conf": 0.5, "f1": 0.67, "precision": 1.0, "recall": 0.5, "latency_ms": 30.0}
    point |= {"within_budget": True, "budget_ms": 60.0, "chosen_on": "face-boxes train photos"}
    results = [result([[10, 10, 50, 50]], [0.9])]
    curve = {"precision": [1.0], "recall": [0.5], "scores": [0.9]}
    return {
        "model": model, "backend": "openvino", "operating_point": point, "sweep": sweep_rows(results, 480, 30.0),
        "train": summary, "test": summary, "all": summary, "results": {"all": results}, "pr_curve": curve,
        "teacher": {"file": "t.onnx", "conf_chosen_on_train": 0.8, "test": summary, "all": summary, "pr_curve": curve},
    }  # fmt: skip


def test_the_card_holds_the_table_the_teacher_the_failures_and_every_picture(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (120, 80)).save(images / "a.jpg")
    Image.new("RGB", (200, 100)).save(tmp_path / "group.jpg")
    Image.new("RGB", (100, 100)).save(tmp_path / "lenna.jpg")

    def predict(batch: list[DetectRequest]) -> list[list[Detection]]:
        return [[Detection(box=(1.0, 1.0, 20.0, 20.0), score=0.9, label="face")] for _ in batch]

    (tmp_path / "card").mkdir()
    (tmp_path / "card" / "sample_a.png").write_bytes(b"an earlier card's picture")
    card = write_report_card(
        tmp_path / "card",
        fake_report(),
        images,
        predict,
        [tmp_path / "group.jpg"],
        [tmp_path / "lenna.jpg"],
        figures=tmp_path / "figures",
    )
    text = card.read_text()
    assert "imgsz 480, conf 0.50" in text and "| test (1 photos, 2 faces) | 0.500" in text
    assert "missed a 40×40 px face" in text and "- lenna: 1 box" in text
    # the chart stays beside the card; the detections drawn on the photos go to the figures folder only
    assert {p.name for p in card.parent.iterdir()} == {"MODEL_CARD.md", "precision_recall.png"}
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"sample_a.png", "group_group.png"}
    assert "](sample_a.png)" not in text and "- `group_group.png`: group photo group.jpg, 1 faces found" in text
    assert "Not shipped: `sample_a.png`, `group_group.png` are drawn by" in text


def test_applying_the_point_ships_conf_and_imgsz_and_hashes_every_file(
    tmp_path: Path, starter_detector_artifact: tuple[Path, Manifest]
) -> None:
    folder = tmp_path / "artifact"
    shutil.copytree(starter_detector_artifact[0], folder)
    (folder / "MODEL_CARD.md").write_text("# card\n")
    apply_operating_point(folder, fake_report())
    manifest = load_artifact(folder)
    assert manifest.defaults["conf"] == 0.5 and manifest.input is not None and manifest.input.size == 480
    assert manifest.metrics["face_boxes_test_recall"] == 0.5 and manifest.metrics["face_boxes_all_ap50"] == 0.5
    assert "MODEL_CARD.md" in {entry.path for entry in manifest.files}
    assert manifest.hyperparameters["operating_point"]["chosen_on"] == "face-boxes train photos"
