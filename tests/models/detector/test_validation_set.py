"""The validation set: its matching rules, its photos, and that training data never holds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.detector.real_photos import is_validation
from models.detector.validation import BOXES_JSON
from models.detector.validation.labels import apply_corrections, read_validation, validation_photos
from models.detector.validation.metrics import PhotoResult, at_conf, by_band, match_all, reliability


def photo(
    faces: list[list[float]], ignore: list[list[float]], boxes: list[list[float]], scores: list[float]
) -> PhotoResult:
    def array(rows: list[list[float]]) -> np.ndarray:
        return np.array(rows, dtype=np.float64).reshape(-1, 4)

    return PhotoResult("p.jpg", array(faces), array(ignore), array(boxes), np.array(scores, dtype=np.float64))


def test_a_detection_on_an_ignore_region_is_neither_a_hit_nor_a_false_face() -> None:
    result = photo([[0, 0, 40, 40]], [[100, 100, 140, 140]], [[0, 0, 40, 40], [102, 102, 138, 138]], [0.9, 0.8])
    scores = at_conf(match_all([result], 24.0), 0.5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 0)


def test_a_duplicate_and_a_box_on_nothing_are_false_and_a_missed_face_counts() -> None:
    faces = [[0, 0, 40, 40], [200, 0, 240, 40]]
    result = photo(faces, [], [[0, 0, 40, 40], [2, 2, 42, 42], [100, 100, 140, 140]], [0.9, 0.8, 0.7])
    scores = at_conf(match_all([result], 24.0), 0.5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 2, 1)
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(0.5)


def test_faces_under_the_floor_are_not_evaluated_and_fall_in_their_band() -> None:
    result = photo([[0, 0, 10, 10], [100, 100, 200, 200]], [], [[0, 0, 10, 10]], [0.9])
    assert at_conf(match_all([result], 24.0), 0.5)["fn"] == 1  # only the 100-px face counts, and it is missed
    bands = {row["band"]: row for row in by_band(match_all([result], 0.0), 0.5)}
    assert bands["0–24"]["recall"] == 1.0 and bands[">96"]["recall"] == 0.0


def test_reliability_gives_the_share_of_faces_per_score_bin() -> None:
    result = photo([[0, 0, 40, 40]], [], [[0, 0, 40, 40], [100, 100, 140, 140]], [0.95, 0.92])
    [top] = [row for row in reliability(match_all([result], 24.0)) if row["bin"].startswith("0.90")]
    assert (top["detections"], top["faces"]) == (2, 0.5)


def test_corrections_drop_promote_demote_and_add_boxes() -> None:
    photos = {"a.jpg": {"faces": [[0, 0, 9, 9], [20, 20, 29, 29]], "ignore": [[50, 50, 59, 59]]}}
    edit = {"drop_faces": [0], "ignore_to_faces": [0], "faces_to_ignore": [1], "add_faces": [[70, 70, 79, 79]]}
    fixed = apply_corrections(photos, {"edit": {"a.jpg": edit}})["a.jpg"]
    assert fixed["faces"] == [[50, 50, 59, 59], [70, 70, 79, 79]] and fixed["ignore"] == [[20, 20, 29, 29]]


def test_the_committed_set_is_big_enough_to_choose_with() -> None:
    photos = read_validation(BOXES_JSON)
    assert len(photos) >= 100 and sum(len(p["faces"]) for p in photos.values()) >= 400
    assert all(not Path(name).is_absolute() and name.startswith("data/") for name in photos)


@pytest.mark.shared
def test_the_committed_set_is_the_held_out_photos_and_the_mixed_data_leaves_them_out(shared_dir: Path) -> None:
    from models.detector.mixed import MixedSources

    assert sorted(read_validation(BOXES_JSON)) == validation_photos(shared_dir)
    sources = MixedSources.from_shared(shared_dir)
    assert sources.held_out == set(validation_photos(shared_dir))
    # the photos YOLO v1-v3 trained on never enter, except the two crowds recorded as seen
    seen = {name for name, entry in read_validation(BOXES_JSON).items() if entry["seen_by_v3"]}
    assert seen == {"data/crowd-photos/25.jpg", "data/crowd-photos/26.jpg"}
    assert all(is_validation(shared_dir / name, 0.1) or "content" in name or name in seen for name in sources.held_out)
