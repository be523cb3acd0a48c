"""The classifier's shared, torch-free pre- and post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from models.artifact import InputSpec
from models.classifier.pipeline import classifications, preprocess, preprocess_crop, softmax
from models.classifier.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, image_to_uint8

SPEC = InputSpec(size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def photo_like(size: tuple[int, int], seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2))


@pytest.mark.parametrize("size", [(16, 16), (64, 64), (300, 120), (17, 401)])
def test_preprocess_is_within_one_grey_level_of_the_torchvision_transform_training_validates_with(
    size: tuple[int, int],
) -> None:
    image = photo_like(size, sum(size))
    ours = preprocess_crop(image, SPEC.size, SPEC.mean, SPEC.std)
    theirs = eval_transform(SPEC.size, SPEC.mean, SPEC.std)(image_to_uint8(image)).numpy()
    assert ours.shape == theirs.shape == (3, 64, 64) and ours.dtype == np.float32
    one_level = 1 / 255 / min(IMAGENET_STD)
    assert np.abs(ours - theirs).max() <= one_level + 1e-6


def test_preprocess_normalises_each_channel_with_the_specs_mean_and_std() -> None:
    grey = Image.new("RGB", (30, 20), (128, 128, 128))
    (array,) = preprocess([grey], SPEC)
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(array.mean(axis=(1, 2)), expected, atol=1e-4)


def test_preprocess_stacks_any_image_modes_into_one_batch() -> None:
    batch = preprocess([Image.new("L", (30, 30), 90), Image.new("RGBA", (10, 50)), photo_like((40, 40), 1)], SPEC)
    assert batch.shape == (3, 3, 64, 64)


def test_softmax_rows_are_probabilities_even_for_huge_logits() -> None:
    probabilities = softmax(np.array([[1000.0, 0.0], [-3.0, 2.0]], dtype=np.float32))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probabilities[1], torch.softmax(torch.tensor([-3.0, 2.0]), dim=0).numpy(), rtol=1e-6)


def test_classifications_name_the_most_probable_label_of_each_row() -> None:
    results = classifications(np.array([[2.0, 0.0], [0.0, 3.0]], dtype=np.float32), ["female", "male"])
    assert [r.label for r in results] == ["female", "male"]
    assert all(r.score == r.probabilities[r.label] == max(r.probabilities.values()) for r in results)


def test_flip_tta_adds_each_crop_mirrored_and_averages_the_two_views() -> None:
    spec = InputSpec(size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    crops = [Image.linear_gradient("L").resize((20, 20)).convert("RGB"), Image.new("RGB", (9, 13), (200, 30, 90))]
    plain, both = preprocess(crops, spec), preprocess(crops, spec, flip=True)
    assert both.shape == (4, 3, 8, 8)
    np.testing.assert_array_equal(both[:2], plain)
    np.testing.assert_array_equal(
        both[2:], preprocess([c.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for c in crops], spec)
    )
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 1.0]])  # crop 0 disagrees with its mirror
    results = classifications(logits, ["female", "male"], flip=True)
    assert len(results) == 2
    assert results[0].probabilities["female"] == pytest.approx(0.5)  # (0.881 + 0.119) / 2
    assert results[1].probabilities == pytest.approx(classifications(logits[1:2], ["female", "male"])[0].probabilities)
