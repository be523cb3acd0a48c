from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.artifact import ArtifactError, load_artifact, write_manifest
from models.classifier.predictor import Classification, FaceClassifier
from models.classifier.starter import make_untrained_classifier
from models.predictor import load_state

CPU = torch.device("cpu")


@pytest.fixture
def starter(tmp_path: Path) -> FaceClassifier:
    folder = tmp_path / "v0"
    make_untrained_classifier(folder)
    return FaceClassifier.from_artifact(folder, load_artifact(folder), CPU)


def test_starter_manifest_describes_an_untrained_two_label_classifier(tmp_path: Path) -> None:
    manifest = make_untrained_classifier(tmp_path / "v0")
    assert (manifest.name, manifest.version, manifest.task, manifest.architecture) == (
        "face-gender",
        "v0",
        "classify",
        "facenet",
    )
    assert manifest.labels == ["female", "male"]
    assert manifest.input is not None and manifest.input.size == 64
    assert manifest.provenance.method == "untrained: random initialisation (seed 0)"


def test_starter_weights_are_float16_and_round_trip_into_the_predictor(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = tmp_path / "v0"
    manifest = make_untrained_classifier(folder)
    stored = load_file(str(folder / "weights.safetensors"))
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    classifier = FaceClassifier.from_artifact(folder, load_artifact(folder), CPU)
    for key, value in load_state(folder, manifest, "weights.safetensors", CPU).items():
        assert torch.equal(classifier.network.state_dict()[key].float(), value)


def test_starter_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    first = make_untrained_classifier(tmp_path / "a", seed=3)
    second = make_untrained_classifier(tmp_path / "b", seed=3)
    assert first.files[0].sha256 == second.files[0].sha256


@pytest.mark.parametrize("size", [(16, 16), (64, 64), (300, 120), (17, 401)])
def test_predict_gives_probabilities_that_sum_to_one_for_any_crop_size(
    starter: FaceClassifier, size: tuple[int, int]
) -> None:
    (result,) = starter.predict([Image.new("RGB", size, (200, 150, 120))])
    assert isinstance(result, Classification)
    assert set(result.probabilities) == {"female", "male"}
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert result.score == max(result.probabilities.values())
    assert result.probabilities[result.label] == result.score


def test_predict_returns_one_result_per_image_in_order(starter: FaceClassifier) -> None:
    images = [Image.new("RGB", (40, 40), (i * 60, 255 - i * 60, 90)) for i in range(4)]
    batch = starter.predict(images)
    singles = [starter.predict([image])[0] for image in images]
    assert len(batch) == 4
    for together, alone in zip(batch, singles, strict=True):
        assert together.probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def test_predict_accepts_grayscale_and_rgba_images_and_an_empty_batch(starter: FaceClassifier) -> None:
    images = [Image.new("L", (30, 30), 90), Image.new("RGBA", (30, 30), (1, 2, 3, 4))]
    assert len(starter.predict(images)) == 2
    assert starter.predict([]) == []


def test_classification_is_frozen(starter: FaceClassifier) -> None:
    (result,) = starter.predict([Image.new("RGB", (32, 32))])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.label = "other"  # type: ignore[misc]


def test_warmup_runs_and_crop_margin_comes_from_the_manifest(starter: FaceClassifier) -> None:
    starter.warmup()
    assert starter.crop_margin == starter.manifest.hyperparameters["crop_margin"]
    assert 0.0 <= starter.crop_margin < 0.5


def test_from_artifact_refuses_another_architecture(tmp_path: Path) -> None:
    folder = tmp_path / "v0"
    manifest = make_untrained_classifier(folder).model_copy(update={"architecture": "resnet50"})
    write_manifest(folder, manifest)
    with pytest.raises(ArtifactError, match="architecture"):
        FaceClassifier.from_artifact(folder, manifest, CPU)


def test_from_artifact_refuses_weights_that_do_not_fit_the_architecture(tmp_path: Path) -> None:
    folder = tmp_path / "v0"
    manifest = make_untrained_classifier(folder)
    wider = manifest.model_copy(update={"hyperparameters": {**manifest.hyperparameters, "widths": [8, 16]}})
    with pytest.raises(ArtifactError, match="do not fit"):
        FaceClassifier.from_artifact(folder, wider, CPU)


def test_a_manifest_with_flip_tta_serves_the_mean_of_each_crop_and_its_mirror(tmp_path: Path) -> None:
    folder = tmp_path / "face-gender" / "v0"
    make_untrained_classifier(folder, seed=3)
    plain = FaceClassifier.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    manifest = load_artifact(folder)
    write_manifest(
        folder, manifest.model_copy(update={"hyperparameters": manifest.hyperparameters | {"flip_tta": True}})
    )
    flipped = FaceClassifier.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    crop = Image.linear_gradient("L").rotate(90).resize((70, 50)).convert("RGB")  # left-right ramp: views differ
    mirror = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    one, other = (plain.predict([image])[0].probabilities["male"] for image in (crop, mirror))
    assert one != pytest.approx(other, abs=1e-6)
    assert flipped.predict([crop])[0].probabilities["male"] == pytest.approx((one + other) / 2, abs=1e-6)
