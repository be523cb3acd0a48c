"""Tiling large photos: the grid covers the photo within a bound, and merging keeps whole faces once."""

from __future__ import annotations

import dataclasses

from PIL import Image

from models.detector.tiling import MAX_TILES, detect_tiled, merge_detections, request_tiles, tiles
from models.detector.types import Detection, DetectRequest


def request(width: int, height: int, tile: str, **changes: object) -> DetectRequest:
    image = Image.new("RGB", (width, height), (90, 90, 90))
    return dataclasses.replace(DetectRequest(image, 0.25, 0.45, 100, 640, tile=tile), **changes)  # type: ignore[arg-type]


def test_tiles_overlap_cover_the_photo_and_never_exceed_the_bound() -> None:
    for width, height in ((1600, 900), (4000, 3000), (8000, 400)):
        parts = tiles(width, height, 320)
        assert 1 < len(parts) <= MAX_TILES
        assert min(p[0] for p in parts) == 0 and max(p[2] for p in parts) == width
        assert min(p[1] for p in parts) == 0 and max(p[3] for p in parts) == height


def test_auto_tiles_only_photos_well_above_the_input_and_off_never() -> None:
    assert request_tiles(request(800, 600, "auto"), 640) == []  # 1.25 input sides
    assert len(request_tiles(request(1600, 900, "auto"), 640)) == 2
    assert request_tiles(request(1600, 900, "auto", tile_above=3.0), 640) == []
    assert request_tiles(request(1600, 900, "off"), 640) == []
    assert len(request_tiles(request(800, 600, "on"), 320)) > 1


def test_a_face_seen_in_the_whole_view_and_a_tile_comes_back_once_in_photo_pixels() -> None:
    photo = request(1600, 900, "auto")
    calls: list[int] = []

    def predict(views: list[DetectRequest]) -> list[list[Detection]]:
        calls.append(len(views))
        out: list[list[Detection]] = [[Detection((898.0, 98.0, 962.0, 162.0), 0.6, "face")]]  # whole view
        for left, top, right, _ in request_tiles(photo, 640):
            inside = left <= 900 and right >= 960
            out.append(
                [Detection((900.0 - left, 100.0 - top, 960.0 - left, 160.0 - top), 0.9, "face")] if inside else []
            )
        return out

    [found] = detect_tiled([photo], lambda _: 640, predict)
    assert calls == [3]  # the whole view and two tiles in one call
    assert len(found) == 1 and found[0].score == 0.9
    assert found[0].box == (900.0, 100.0, 960.0, 160.0)


def test_a_box_cut_by_an_inner_tile_border_is_dropped_and_min_size_applies_after_the_merge() -> None:
    photo = request(1600, 900, "auto", min_size=30.0)
    (left, _, right, _), _ = request_tiles(photo, 640)

    def predict(views: list[DetectRequest]) -> list[list[Detection]]:
        assert all(view.min_size == 0 for view in views)
        cut = Detection((right - left - 20.0, 10.0, right - left - 0.5, 50.0), 0.95, "face")  # at the inner border
        small = Detection((10.0, 10.0, 30.0, 30.0), 0.9, "face")  # 20 px: under min_size
        return [[], [cut, small], []]

    assert detect_tiled([photo], lambda _: 640, predict) == [[]]


def test_untiled_requests_pass_through_unchanged() -> None:
    photo = request(640, 480, "auto", min_size=5.0)
    seen: list[DetectRequest] = []

    def predict(views: list[DetectRequest]) -> list[list[Detection]]:
        seen.extend(views)
        return [[Detection((1.0, 1.0, 3.0, 3.0), 0.5, "face")]]  # a 2-px box: the predictor's own min_size rules

    assert detect_tiled([photo], lambda _: 640, predict) == [[Detection((1.0, 1.0, 3.0, 3.0), 0.5, "face")]]
    assert seen == [photo]


def test_merging_keeps_the_best_of_overlapping_boxes_up_to_max_det() -> None:
    found = [
        Detection((0.0, 0.0, 10.0, 10.0), 0.7, "face"),
        Detection((1.0, 1.0, 11.0, 11.0), 0.9, "face"),
        Detection((50.0, 50.0, 60.0, 60.0), 0.8, "face"),
    ]
    assert [d.score for d in merge_detections(found, 0.45, 10)] == [0.9, 0.8]
    assert [d.score for d in merge_detections(found, 0.45, 1)] == [0.9]
