"""Natural faces: the box cache, near-duplicate groups, disjoint splits and served versus training crops."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from models.classifier.data import FaceDataset, served_crop
from models.classifier.face_boxes import dhash, group_near_duplicates, read_cache
from models.classifier.faces import load_faces, scan_faces, slices, split_faces
from models.classifier.pipeline import expand_box
from models.classifier.transforms import eval_transform, jitter_box, jittered_crop
from tests.models.classifier.conftest import PORTRAIT_BOX, TinyFaces


def test_the_cache_stores_relative_paths_boxes_for_portraits_only_and_hashes(tiny_faces: TinyFaces) -> None:
    cache = read_cache(tiny_faces.cache)
    assert all(not path.startswith("/") and path.count("/") == 2 for path in cache)
    assert cache["portraits/female/p01.jpg"]["box"] == list(PORTRAIT_BOX)
    assert cache["crops/female/c01.jpg"]["box"] is None and cache["portraits/male/noface.jpg"]["box"] is None
    assert all(len(entry["dhash"]) == 16 for entry in cache.values())


def test_a_re_encoded_copy_hashes_within_a_few_bits_and_joins_its_original_group() -> None:
    rng = np.random.default_rng(0)
    picture, other = (Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((64, 48)) for _ in "ab")
    copy = io.BytesIO()
    picture.resize((60, 45)).save(copy, "JPEG", quality=60)
    hashes = [dhash(picture), dhash(Image.open(copy)), dhash(other)]
    groups = group_near_duplicates(hashes)
    assert groups[0] == groups[1] != groups[2]


def test_portraits_without_a_face_are_left_out_as_classify_would_find_none(tiny_faces: TinyFaces) -> None:
    samples = scan_faces(tiny_faces.root, read_cache(tiny_faces.cache))
    assert "noface.jpg" not in {s.path.name for s in samples}
    portraits = [s for s in samples if s.source == "portraits"]
    assert portraits and all(s.box == PORTRAIT_BOX for s in portraits)
    assert all(s.box is None for s in samples if s.source == "crops")


def test_splits_share_no_duplicate_group_and_hold_both_subsets_and_labels(tiny_faces: TinyFaces) -> None:
    train, val, test = load_faces(tiny_faces.root, tiny_faces.cache)
    groups = [{s.identity for s in part} for part in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    copies = [s for s in train + val + test if s.path.stem.startswith("p00")]
    assert len({s.identity for s in copies if s.label == 0}) == 1  # the original and its copy: one group
    for part in (train, test):
        assert {(s.source, s.label) for s in part} == {("crops", 0), ("crops", 1), ("portraits", 0), ("portraits", 1)}
    assert set(slices(test)) == {"faces", "faces/crops", "faces/portraits"}


def test_a_group_with_both_labels_is_dropped(tiny_faces: TinyFaces) -> None:
    samples = scan_faces(tiny_faces.root, read_cache(tiny_faces.cache))
    relabelled = [
        s if s.path.name != "p00-copy.jpg" else type(s)(**{**s.__dict__, "label": 1 - s.label}) for s in samples
    ]
    kept = [s for part in split_faces(relabelled) for s in part]
    assert not {s.path.name for s in kept if s.source == "portraits" and s.path.parent.name == "female"} & {
        "p00.jpg",
        "p00-copy.jpg",
    }


def test_evaluation_crops_a_portrait_as_served_and_training_jitters_the_box(tiny_faces: TinyFaces) -> None:
    image = Image.open(tiny_faces.root / "portraits" / "female" / "p01.jpg")
    served = served_crop(0.1)(image, PORTRAIT_BOX)
    assert served.size == image.crop(expand_box(PORTRAIT_BOX, 0.1, image.width, image.height)).size == (48, 60)
    torch.manual_seed(0)
    boxes = {jitter_box(PORTRAIT_BOX) for _ in range(20)}
    assert len(boxes) == 20
    for x1, y1, x2, y2 in boxes:
        assert 0.7 < (x2 - x1) / 40 < 1.5 and 0.7 < (y2 - y1) / 50 < 1.5
        assert abs((x1 + x2) / 2 - 40) <= 0.08 * 40 * 1.01
    crop = jittered_crop(0.1)(image, PORTRAIT_BOX)
    assert 0 < crop.width <= image.width and 0 < crop.height <= image.height


def test_the_dataset_crops_boxed_samples_and_resizes_every_sample(tiny_faces: TinyFaces) -> None:
    train, _, _ = load_faces(tiny_faces.root, tiny_faces.cache)
    dataset = FaceDataset(train, eval_transform(32, (0.5,) * 3, (0.25,) * 3))
    shapes = {tuple(dataset[i][0].shape) for i in range(len(dataset))}
    assert shapes == {(3, 32, 32)} and dataset[0][0].dtype == torch.float32
