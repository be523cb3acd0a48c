from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from models.classifier.data import (
    LABELS,
    FaceDataset,
    Sample,
    class_counts,
    identity_of,
    read_name_list,
    scan_lfw,
    split_by_identity,
)
from models.classifier.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform


def test_identity_of_strips_the_image_number() -> None:
    assert identity_of("George_W_Bush_0042.jpg") == "George_W_Bush"


def test_read_name_list_tolerates_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(b"A_B_0001.jpg\r\n\r\n  C_D_0002.jpg \r\n")
    assert read_name_list(path) == {"A_B_0001.jpg", "C_D_0002.jpg"}


def test_scan_keeps_listed_people_with_their_labels(tiny_lfw: Any) -> None:
    samples = scan_lfw(tiny_lfw.root)
    labels = {s.identity: LABELS[s.label] for s in samples}
    assert {p for p, label in labels.items() if label == "female"} == set(tiny_lfw.females)
    assert {p for p, label in labels.items() if label == "male"} == set(tiny_lfw.males)
    assert len(samples) == (len(tiny_lfw.females) + len(tiny_lfw.males)) * tiny_lfw.images_per_person


def test_scan_drops_people_in_both_lists_and_images_in_neither(tiny_lfw: Any) -> None:
    identities = {s.identity for s in scan_lfw(tiny_lfw.root)}
    assert (tiny_lfw.root / "images" / tiny_lfw.in_both_lists).is_dir()
    assert tiny_lfw.in_both_lists not in identities
    assert tiny_lfw.unlisted not in identities


def test_scan_of_a_folder_without_labelled_images_says_so(tmp_path: Path) -> None:
    (tmp_path / "gender").mkdir()
    for name in ("male_names.txt", "female_names.txt"):
        (tmp_path / "gender" / name).write_text("")
    with pytest.raises(ValueError, match="no labelled images"):
        scan_lfw(tmp_path)


def many_people(n_female: int = 40, n_male: int = 120) -> list[Sample]:
    """Synthetic samples: person i has 1 + i % 5 images (uneven, like LFW)."""
    samples = []
    for label, count in ((0, n_female), (1, n_male)):
        for i in range(count):
            person = f"{LABELS[label]}_{i}"
            samples += [Sample(Path(f"{person}_{k}.jpg"), label, person) for k in range(1 + i % 5)]
    return samples


def test_split_shares_no_identity_between_parts() -> None:
    parts = split_by_identity(many_people(), (0.8, 0.1, 0.1), seed=3)
    people = [{s.identity for s in part} for part in parts]
    assert not (people[0] & people[1] or people[0] & people[2] or people[1] & people[2])
    assert sum(len(part) for part in parts) == len(many_people())


def test_split_is_stratified_by_label_and_close_to_the_fractions() -> None:
    samples = many_people()
    totals = class_counts(samples)
    for part, fraction in zip(split_by_identity(samples, (0.8, 0.1, 0.1), seed=1), (0.8, 0.1, 0.1), strict=True):
        for label, count in enumerate(class_counts(part)):
            assert count == pytest.approx(fraction * totals[label], abs=5)  # within one person (<= 5 images)


def test_split_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    samples = many_people()
    assert split_by_identity(samples, seed=7) == split_by_identity(samples, seed=7)
    assert split_by_identity(samples, seed=7) != split_by_identity(samples, seed=8)


def test_dataset_serves_normalised_tensors_of_the_input_size(tiny_lfw: Any) -> None:
    samples = scan_lfw(tiny_lfw.root)
    for transform in (
        train_transform(32, IMAGENET_MEAN, IMAGENET_STD),
        eval_transform(32, IMAGENET_MEAN, IMAGENET_STD),
    ):
        image, label = FaceDataset(samples, transform)[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert label == samples[0].label


def test_train_transform_is_random_and_eval_transform_is_not() -> None:
    pixels = torch.randint(0, 256, (3, 90, 90), dtype=torch.uint8)
    augment = train_transform(64, IMAGENET_MEAN, IMAGENET_STD)
    plain = eval_transform(64, IMAGENET_MEAN, IMAGENET_STD)
    assert not torch.equal(augment(pixels), augment(pixels))
    assert torch.equal(plain(pixels), plain(pixels))


@pytest.mark.shared
def test_real_lfw_scan_drops_the_people_listed_in_both_gender_lists(shared_dir: Path) -> None:
    samples = scan_lfw(shared_dir / "data" / "lfw3d")
    identities = {s.identity for s in samples}
    assert not identities & {"Allison_Searing", "Claudia_Coslovich", "Elizabeth_Hill"}
    female, male = class_counts(samples)
    assert 2_500 < female < male < 9_100  # about 3.5 men per woman
    parts = split_by_identity(samples)
    assert not {s.identity for s in parts[0]} & {s.identity for s in parts[2]}
