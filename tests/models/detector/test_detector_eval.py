"""Detector evaluation: VOC matching and AP on hand-computed cases, then end to end through FaceDetector."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from models.artifact import Manifest
from models.detector import evaluate as E
from models.detector.predictor import FaceDetector


def result(
    ground_truth_xywh: list[list[float]], detections_xywh: list[list[float]], scores: list[float]
) -> E.ImageResult:
    return E.ImageResult(
        "photo.jpg",
        E.xywh_to_xyxy(ground_truth_xywh),
        E.xywh_to_xyxy(detections_xywh),
        np.array(scores, dtype=float),
    )


THREE_FACES = [[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]]


def test_iou_is_one_for_the_same_box_zero_for_disjoint_and_a_third_for_half_shifted_boxes() -> None:
    boxes = E.xywh_to_xyxy([[0, 0, 10, 10]])
    others = E.xywh_to_xyxy([[0, 0, 10, 10], [50, 50, 5, 5], [5, 0, 10, 10]])
    assert E.box_iou(boxes, others)[0] == pytest.approx([1.0, 0.0, 1 / 3])


def test_ap_of_three_faces_and_four_scored_detections_matches_the_hand_computation() -> None:
    # By score: hit face 1 (P 1, R 1/3), duplicate of face 1 (P 1/2), hit face 2 (P 2/3, R 2/3), a miss.
    # Face 3 is never found. All-point AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
    case = result(THREE_FACES, [[0, 0, 10, 10], [1, 0, 10, 10], [20, 0, 10, 10], [90, 90, 5, 5]], [0.9, 0.8, 0.7, 0.6])
    metrics = E.detection_metrics([case], conf=0.65, iou_match=0.5)
    assert metrics["ap"] == pytest.approx(5 / 9)
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (2, 1, 1)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["best_f1"] == pytest.approx(2 / 3) and metrics["best_f1_conf"] == pytest.approx(0.7)


def test_perfect_detections_score_ap_one_whatever_their_order() -> None:
    case = result(THREE_FACES, THREE_FACES[::-1], [0.3, 0.9, 0.5])
    metrics = E.detection_metrics([case], conf=0.25, iou_match=0.5)
    assert metrics["ap"] == pytest.approx(1.0) and metrics["precision"] == 1.0 and metrics["recall"] == 1.0


def test_a_detection_claims_only_its_best_overlapping_face_as_in_voc() -> None:
    # The second detection overlaps face A most (already claimed) and face B enough (IoU 0.54): VOC calls it a
    # false positive rather than reassigning it to B.
    faces = [[0, 0, 10, 10], [4, 0, 10, 10]]
    case = result(faces, [[0, 0, 10, 10], [1, 0, 10, 10]], [0.9, 0.8])
    scores, hits = E.match_detections([case], iou_match=0.5)
    assert scores.tolist() == [0.9, 0.8] and hits.tolist() == [1.0, 0.0]


def test_detections_of_all_images_are_pooled_by_score() -> None:
    sure_hit = result([[0, 0, 10, 10]], [[0, 0, 10, 10]], [0.9])
    confident_miss = result([[0, 0, 10, 10]], [[50, 50, 10, 10]], [0.95])
    scores, hits = E.match_detections([sure_hit, confident_miss], iou_match=0.5)
    assert scores.tolist() == [0.95, 0.9] and hits.tolist() == [0.0, 1.0]
    # Precision 0 then 1/2 at recall 1/2: the envelope gives 1/2 over the first half of recall.
    assert E.detection_metrics([sure_hit, confident_miss], 0.5, 0.5)["ap"] == pytest.approx(0.25)


def test_no_detections_give_zero_ap_and_every_face_missed() -> None:
    metrics = E.detection_metrics([result(THREE_FACES, [], [])], conf=0.25, iou_match=0.5)
    assert metrics["ap"] == 0.0 and metrics["fn"] == 3 and metrics["precision"] == 0.0


def test_read_boxes_converts_left_top_width_height_and_filters_by_split(tmp_path: Path) -> None:
    boxes_json = tmp_path / "boxes.json"
    entries = {
        "a.jpg": {"split": "train", "boxes_xywh": [[1, 2, 3, 4]]},
        "b.jpg": {"split": "test", "boxes_xywh": []},
    }
    boxes_json.write_text(json.dumps(entries))
    assert E.read_boxes(boxes_json)["a.jpg"].tolist() == [[1, 2, 4, 6]]
    test_split = E.read_boxes(boxes_json, "test")
    assert list(test_split) == ["b.jpg"] and test_split["b.jpg"].shape == (0, 4)


def write_photos(folder: Path) -> Path:
    """Three dark photos, each with one bright 'face' rectangle, and their boxes.json."""
    (folder / "images").mkdir(parents=True)
    entries = {}
    for name, size, box in [
        ("wide.jpg", (160, 96), (30, 20, 40, 36)),
        ("tall.jpg", (90, 140), (10, 60, 50, 44)),
    ]:
        image = Image.new("RGB", size, (10, 10, 10))
        x, y, w, h = box
        ImageDraw.Draw(image).rectangle((x, y, x + w - 1, y + h - 1), fill=(250, 250, 250))
        image.save(folder / "images" / name)
        entries[name] = {"split": "test", "boxes_xywh": [list(box)]}
    (folder / "boxes.json").write_text(json.dumps(entries))
    return folder


class BrightRegionNetwork(torch.nn.Module):
    """Stands in for YOLO with a known answer: one confident box around the bright pixels of each input."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        anchors = []
        for gray in images.mean(dim=1):  # (H, W) each
            ys, xs = torch.nonzero(gray > 0.7, as_tuple=True)
            x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1
            anchors.append(torch.tensor([[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9]]).T)  # (5, 1)
        return torch.stack(anchors), {}


def test_a_detector_that_boxes_every_face_scores_ap_one_through_the_served_pipeline(
    tmp_path: Path, starter_detector_artifact: tuple[Path, Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, manifest = starter_detector_artifact
    photos = write_photos(tmp_path / "photos")
    known = FaceDetector(BrightRegionNetwork(), manifest, torch.device("cpu"))
    monkeypatch.setattr(E.FaceDetector, "from_artifact", classmethod(lambda cls, *args: known))
    metrics = E.evaluate_detector(folder, photos / "boxes.json", photos / "images", imgsz=320)
    assert metrics["ap"] == pytest.approx(1.0) and (metrics["tp"], metrics["fp"]) == (2, 0)


def test_evaluating_an_artifact_counts_every_face_and_writes_a_card_with_plots(
    tmp_path: Path, starter_detector_artifact: tuple[Path, Manifest]
) -> None:
    folder, _ = starter_detector_artifact
    photos = write_photos(tmp_path / "photos")
    metrics = E.evaluate_detector(folder, photos / "boxes.json", photos / "images", imgsz=64, split="test")
    assert metrics["n_images"] == 2 and metrics["n_faces"] == 2 and metrics["conf"] == 0.25  # shipped default
    assert metrics["tp"] + metrics["fn"] == 2 and 0.0 <= metrics["ap"] <= 1.0
    card = E.write_card_for(metrics, photos / "images", tmp_path / "card", figures=tmp_path / "figures")
    text = card.read_text()
    assert "| AP at IoU 0.5 (all-point, VOC) |" in text and f"]({E.PR_CURVE_PNG})" in text
    # the chart stays beside the card; detections drawn on the photos go to the figures folder, never beside it
    assert {p.name for p in (tmp_path / "card").iterdir()} == {E.CARD_NAME, E.PR_CURVE_PNG}
    samples = sorted((tmp_path / "figures").glob("sample_*.png"))
    assert [p.name for p in samples] == ["sample_tall.png", "sample_wide.png"]
    assert all(Image.open(p).size[0] > 0 for p in [tmp_path / "card" / E.PR_CURVE_PNG, *samples])
    assert "](sample_" not in text and "Not shipped: `sample_tall.png`, `sample_wide.png` are drawn by" in text
