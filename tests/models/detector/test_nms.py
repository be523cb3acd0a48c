"""Non-maximum suppression over decoded YOLO head output (numpy), held to torchvision's choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torchvision.ops import batched_nms as torchvision_batched_nms

from models.detector.boxes import batched_nms, box_iou, cxcywh_to_xyxy, greedy_nms, non_max_suppression


def head_output(anchors: list[tuple[float, float, float, float, list[float]]]) -> np.ndarray:
    """A (1, 4 + nc, A) head output from (cx, cy, w, h, class scores) rows."""
    rows = [[cx, cy, w, h, *scores] for cx, cy, w, h, scores in anchors]
    return np.array(rows, dtype=np.float32).T[None]


def random_boxes(rng: np.random.Generator, count: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crowded x1,y1,x2,y2 boxes on a 200 px canvas (many overlaps), distinct scores, class indices."""
    corners = rng.uniform(0, 160, (count, 2))
    sizes = rng.uniform(4, 60, (count, 2))
    boxes = np.concatenate((corners, corners + sizes), axis=1).astype(np.float32)  # (n, 4)
    scores = rng.permutation(count).astype(np.float32) / count + 0.01  # distinct: no ties to break
    return boxes, scores, rng.integers(0, classes, count)


def test_cxcywh_to_xyxy_keeps_the_centre_and_the_size() -> None:
    boxes = np.array([[50.0, 40.0, 20.0, 10.0], [0.0, 0.0, 4.0, 8.0]], dtype=np.float32)
    xyxy = cxcywh_to_xyxy(boxes)
    np.testing.assert_array_equal((xyxy[:, :2] + xyxy[:, 2:]) / 2, boxes[:, :2])
    np.testing.assert_array_equal(xyxy[:, 2:] - xyxy[:, :2], boxes[:, 2:])


def test_box_iou_is_one_for_the_same_box_zero_for_disjoint_and_a_third_for_a_half_shift() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [5.0, 0.0, 15.0, 10.0]])
    np.testing.assert_allclose(box_iou(box, others), [1.0, 0.0, 1 / 3])


@pytest.mark.parametrize(("seed", "classes", "iou"), [(0, 1, 0.45), (1, 1, 0.7), (2, 3, 0.45), (3, 2, 0.1)])
def test_batched_nms_keeps_exactly_the_boxes_torchvision_keeps_in_the_same_order(
    seed: int, classes: int, iou: float
) -> None:
    boxes, scores, labels = random_boxes(np.random.default_rng(seed), 300, classes)
    order = np.argsort(-scores)
    ours = order[batched_nms(boxes[order], labels[order], iou, max_det=1000)]
    theirs = torchvision_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), iou)
    assert 10 < len(ours) < 300  # a crowd: some boxes suppressed, some kept
    assert ours.tolist() == theirs.tolist()


@pytest.mark.parametrize(("seed", "iou", "max_det"), [(5, 0.3, 1000), (6, 0.45, 1000), (7, 0.45, 5)])
def test_greedy_nms_keeps_torchvisions_boxes_empty_ones_included(seed: int, iou: float, max_det: int) -> None:
    boxes, scores, _ = random_boxes(np.random.default_rng(seed), 400, 1)
    boxes[:3] = 0.0  # empty boxes: an undefined IoU suppresses nothing, as in torchvision
    order = np.argsort(-scores)
    ours = order[greedy_nms(boxes[order], iou, max_det)]
    theirs = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou)[:max_det]
    assert 5 <= len(ours) < 400
    assert ours.tolist() == theirs.tolist()


def test_batched_nms_stops_at_max_det_with_torchvisions_best_boxes() -> None:
    boxes, scores, labels = random_boxes(np.random.default_rng(4), 200, 2)
    order = np.argsort(-scores)
    ours = order[batched_nms(boxes[order], labels[order], 0.45, max_det=7)]
    theirs = torchvision_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.45)
    assert ours.tolist() == theirs[:7].tolist()


def test_nms_of_no_candidates_is_an_empty_six_column_array() -> None:
    pred = head_output([(50, 50, 20, 20, [0.1])])
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert kept.shape == (0, 6)


def test_nms_keeps_only_the_best_of_overlapping_boxes_of_one_class() -> None:
    pred = head_output([(50, 50, 20, 20, [0.6]), (51, 50, 20, 20, [0.9]), (52, 51, 20, 20, [0.7])])
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)
    assert kept.shape == (1, 6)
    np.testing.assert_allclose(kept[0], [41.0, 40.0, 61.0, 60.0, 0.9, 0.0], rtol=1e-6)


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
    np.testing.assert_allclose(kept[:, 4], [0.6, 0.3])
    assert kept[:, 5].tolist() == [1.0, 0.0]


def test_nms_keeps_the_max_det_highest_scores_in_descending_order() -> None:
    scores = [0.3, 0.9, 0.5, 0.8, 0.4, 0.7]
    pred = head_output([(20.0 * i + 10, 10, 8, 8, [s]) for i, s in enumerate(scores)])  # disjoint boxes
    (kept,) = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=3)
    np.testing.assert_allclose(kept[:, 4], [0.9, 0.8, 0.7])


def test_nms_answers_each_image_of_a_batch_separately() -> None:
    confident = head_output([(50, 50, 20, 20, [0.9])])
    pred = np.concatenate((confident, confident * np.array([1, 1, 1, 1, 0.1], dtype=np.float32)[None, :, None]))
    kept = non_max_suppression(pred, conf=0.25, iou=0.45, max_det=300)  # pred is (2, 5, 1)
    assert [len(k) for k in kept] == [1, 0]
    assert kept[1].shape == (0, 6)
