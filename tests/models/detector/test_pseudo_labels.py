"""Teacher boxes as labels: box conventions, sure faces versus regions to ignore, greying out."""

from __future__ import annotations

import numpy as np
from PIL import Image

from models.detector.pseudo_labels import (
    GREY,
    BoxConvention,
    convention_report,
    drop_nested,
    fit_convention,
    grey_out,
    match_pairs,
    split_detections,
    visible_share,
)

BOXES = np.array([[10.0, 20.0, 50.0, 70.0], [100.0, 40.0, 130.0, 80.0], [200.0, 10.0, 260.0, 90.0]])


def test_a_convention_and_its_inverse_give_back_the_boxes() -> None:
    convention = BoxConvention(scale_w=1.15, scale_h=0.85, shift_x=-0.05, shift_y=0.08)
    np.testing.assert_allclose(convention.inverse().apply(convention.apply(BOXES)), BOXES, atol=1e-9)


def test_two_conventions_chained_equal_their_composition() -> None:
    first, second = BoxConvention(1.1, 0.9, 0.02, 0.05), BoxConvention(0.95, 1.2, -0.03, 0.01)
    np.testing.assert_allclose(first.then(second).apply(BOXES), second.apply(first.apply(BOXES)), atol=1e-9)


def test_fitting_recovers_a_known_convention_and_raises_the_iou() -> None:
    truth = BoxConvention(scale_w=1.13, scale_h=0.83, shift_x=-0.02, shift_y=0.08)
    fitted = fit_convention(BOXES, truth.apply(BOXES))
    assert np.allclose([fitted.scale_w, fitted.scale_h, fitted.shift_x, fitted.shift_y], [1.13, 0.83, -0.02, 0.08])
    report = convention_report(BOXES, truth.apply(BOXES), fitted)
    assert report["mean_iou_before"] < 0.8 and report["mean_iou_after"] > 0.999


def test_matching_pairs_each_box_once_and_skips_boxes_that_barely_overlap() -> None:
    shifted = BOXES[[2, 0]] + 2.0
    assert sorted(match_pairs(BOXES, shifted)) == [(0, 1), (2, 0)]
    assert match_pairs(BOXES, np.array([[400.0, 400.0, 420.0, 420.0]])) == []


def test_unsure_and_tiny_detections_are_ignored_not_labelled() -> None:
    boxes = np.array([[0, 0, 40, 40], [50, 0, 90, 40], [100, 0, 105, 5]], dtype=float)
    faces, ignore = split_detections(boxes, np.array([0.95, 0.5, 0.99]), keep=0.8, min_side=8)
    np.testing.assert_array_equal(faces, boxes[:1])
    np.testing.assert_array_equal(ignore, boxes[1:])


def test_a_box_inside_a_larger_face_is_dropped() -> None:
    face, mouth = [0.0, 0.0, 100.0, 100.0], [30.0, 60.0, 70.0, 80.0]
    np.testing.assert_array_equal(drop_nested(np.array([mouth, face])), np.array([face]))


def test_grey_out_paints_ignored_regions_but_never_a_kept_face() -> None:
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    kept = np.array([[10.0, 10.0, 60.0, 60.0]])
    regions = np.array([[120.0, 20.0, 160.0, 60.0], [20.0, 20.0, 40.0, 40.0]])  # the second lies on the kept face
    assert grey_out(image, regions, kept) == 1
    assert image.getpixel((140, 40)) == GREY and image.getpixel((30, 30)) == (255, 0, 0)


def test_visible_share_is_the_part_of_each_box_inside_the_crop() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]])
    np.testing.assert_allclose(visible_share(boxes, (0, 0, 10, 10)), [1.0, 0.5])
