"""Non-maximum suppression over decoded YOLO head output."""

from __future__ import annotations

import torch

from models.detector.boxes import cxcywh_to_xyxy, non_max_suppression


def head_output(anchors: list[tuple[float, float, float, float, list[float]]]) -> torch.Tensor:
    """A (1, 4 + nc, A) head output from (cx, cy, w, h, class scores) rows."""
    rows = [[cx, cy, w, h, *scores] for cx, cy, w, h, scores in anchors]
    return torch.tensor(rows, dtype=torch.float32).T.unsqueeze(0)


def test_cxcywh_to_xyxy_keeps_the_centre_and_the_size() -> None:
    boxes = torch.tensor([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 4.0, 8.0]])
    xyxy = cxcywh_to_xyxy(boxes)
    assert torch.equal((xyxy[:, :2] + xyxy[:, 2:]) / 2, boxes[:, :2])
    assert torch.equal(xyxy[:, 2:] - xyxy[:, :2], boxes[:, 2:])


def test_nms_keeps_only_the_best_of_overlapping_boxes_of_one_class() -> None:
    pred = head_output([(50, 50, 20, 20, [0.6]), (51, 50, 20, 20, [0.9]), (52, 51, 20, 20, [0.7])])
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert kept.shape == (1, 6)
    assert torch.allclose(kept[0], torch.tensor([41.0, 40.0, 61.0, 60.0, 0.9, 0.0]))


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    pred = head_output([(50, 50, 20, 20, [0.9, 0.1]), (51, 50, 20, 20, [0.1, 0.8])])
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert kept[:, 5].tolist() == [0.0, 1.0]


def test_nms_keeps_boxes_that_overlap_less_than_the_iou_threshold() -> None:
    pred = head_output([(50, 50, 20, 20, [0.9]), (60, 50, 20, 20, [0.8])])  # IoU = 1/3
    assert len(non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)[0]) == 2
    assert len(non_max_suppression(pred, conf=0.25, iou=0.3, max_det=300)[0]) == 1


def test_nms_drops_boxes_whose_best_score_is_not_above_conf() -> None:
    # The middle box's best score equals conf exactly (0.25 is exact in float32): not above it, so dropped.
    pred = head_output([(10, 10, 8, 8, [0.3, 0.2]), (50, 50, 8, 8, [0.1, 0.25]), (90, 90, 8, 8, [0.2, 0.6])])
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert torch.allclose(kept[:, 4], torch.tensor([0.6, 0.3]))
    assert kept[:, 5].tolist() == [1.0, 0.0]


def test_nms_keeps_the_max_det_highest_scores_in_descending_order() -> None:
    scores = [0.3, 0.9, 0.5, 0.8, 0.4, 0.7]
    pred = head_output([(20.0 * i + 10, 10, 8, 8, [s]) for i, s in enumerate(scores)])  # disjoint boxes
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=3)
    assert torch.allclose(kept[:, 4], torch.tensor([0.9, 0.8, 0.7]))


def test_nms_answers_each_image_of_a_batch_separately() -> None:
    confident = head_output([(50, 50, 20, 20, [0.9])])
    pred = torch.cat((confident, confident * torch.tensor([1, 1, 1, 1, 0.1]).view(1, 5, 1)))  # (2, 5, 1)
    kept = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert [len(k) for k in kept] == [1, 0]
    assert kept[1].shape == (0, 6)
