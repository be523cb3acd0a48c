from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from models.artifact import Manifest, load_artifact
from models.classifier import train as train_module
from models.classifier.predictor import FaceClassifier
from models.classifier.train import TrainConfig, memory_format, train_classifier


class SimulatedCrash(Exception):
    """Stands for a killed process in the middle of training."""


REQUIRED_METRICS = {"accuracy", "balanced_accuracy", "recall_female", "recall_male", "n_train", "n_val", "n_test"}


def test_training_writes_a_verified_artifact_that_predicts_probabilities(tiny_trained: tuple[Path, Manifest]) -> None:
    folder, manifest = tiny_trained
    assert load_artifact(folder) == manifest
    classifier = FaceClassifier.from_artifact(folder, manifest, torch.device("cpu"))
    results = classifier.predict([Image.new("RGB", (50, 60), (90, 110, 200)), Image.new("RGB", (20, 20))])
    assert [sum(r.probabilities.values()) for r in results] == pytest.approx([1.0, 1.0])


def test_training_manifest_records_metrics_recipe_and_provenance(tiny_trained: tuple[Path, Manifest]) -> None:
    _, manifest = tiny_trained
    assert set(manifest.metrics) >= REQUIRED_METRICS
    assert all(0.0 <= manifest.metrics[k] <= 1.0 for k in ("accuracy", "balanced_accuracy", "recall_female"))
    assert manifest.metrics["n_train"] + manifest.metrics["n_val"] + manifest.metrics["n_test"] == 48
    hyper = manifest.hyperparameters
    assert hyper["widths"] == [4, 8] and hyper["input_size"] == 32 and 1 <= hyper["selected_epoch"] <= 2
    assert manifest.input is not None and manifest.input.size == 32
    assert manifest.provenance.method.startswith("trained")
    assert {f.path for f in manifest.files} == {
        "weights.safetensors",
        "MODEL_CARD.md",
        "confusion_matrix.png",
        "roc_curve.png",
        "confusion_slices.png",
        "reliability.png",
    }


def test_training_writes_a_model_card_beside_the_artifact(tiny_trained: tuple[Path, Manifest]) -> None:
    folder, _ = tiny_trained
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| balanced_accuracy |" in card and "confusion_matrix.png" in card
    assert (folder / "confusion_matrix.png").stat().st_size > 0


def test_training_learns_the_easy_tiny_task(
    tiny_lfw: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    manifest = train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v1", epochs=6))
    assert manifest.metrics["balanced_accuracy"] >= 0.75


def test_an_interrupted_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(
    tiny_lfw: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "whole" / "v1", epochs=3))
    cfg = tiny_recipe(tiny_lfw.root, tmp_path / "resumed" / "v1", epochs=3)
    real_epoch = train_module.train_one_epoch
    calls: list[str] = []

    def epoch_then_crash(*args: Any, **kwargs: Any) -> float:
        calls.append("epoch")
        if calls == ["epoch", "epoch"]:  # the second epoch of the first run dies
            raise SimulatedCrash
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", epoch_then_crash)
    with pytest.raises(SimulatedCrash):
        train_classifier(cfg)
    assert cfg.checkpoint_path.is_file() and not (cfg.out_dir / "manifest.json").exists()
    calls[:] = ["resumed"]
    resumed = train_classifier(cfg)
    assert calls == ["resumed", "epoch", "epoch"]  # epochs 2 and 3 only
    assert resumed.hyperparameters["history"] == whole.hyperparameters["history"]
    assert resumed.file("weights.safetensors").sha256 == whole.file("weights.safetensors").sha256


def test_a_checkpoint_of_another_recipe_is_refused(
    tiny_lfw: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v1", epochs=1))
    with pytest.raises(ValueError, match="another recipe"):
        train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v1", epochs=1, lr=0.5))


def test_training_refuses_an_output_folder_holding_other_files(
    tiny_lfw: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v1", epochs=1))
    assert (tmp_path / "v1" / "notes.txt").read_text() == "keep me"


@pytest.fixture(scope="module")
def trained_with_faces(
    tiny_lfw: Any, tiny_faces: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Manifest]:
    out_dir = tmp_path_factory.mktemp("faces") / "v2"
    cfg = tiny_recipe(
        tiny_lfw.root, out_dir, faces_root=tiny_faces.root, face_boxes=tiny_faces.cache, hours=0.05, bf16=True
    )
    return out_dir, train_classifier(cfg)


def test_training_with_natural_faces_reports_each_slice_and_a_fitted_temperature(
    trained_with_faces: tuple[Path, Manifest], tiny_faces: Any
) -> None:
    _, manifest = trained_with_faces
    metrics = manifest.metrics
    assert {"faces_balanced_accuracy", "faces_crops_accuracy", "faces_portraits_accuracy", "val_ece_after"} <= set(
        metrics
    )
    assert metrics["faces_n"] == metrics["faces_crops_n"] + metrics["faces_portraits_n"] > 0
    assert manifest.hyperparameters["temperature"] == metrics["temperature"] > 0
    assert {"faces_val_balanced_accuracy", "lfw_val_balanced_accuracy"} <= set(manifest.hyperparameters["history"][0])
    recorded = manifest.provenance.model_dump_json().replace(manifest.provenance.command or "", "")
    assert str(tiny_faces.root) not in recorded and "faces-gender" in recorded  # names, not machine paths


def test_the_card_shows_slices_confusion_matrices_reliability_and_responsible_use(
    trained_with_faces: tuple[Path, Manifest],
) -> None:
    folder, _ = trained_with_faces
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| faces/portraits |" in card and "| lfw |" in card and "Temperature scaling" in card
    assert "appears to present" in card and "Do not use it" in card
    for png in ("confusion_slices.png", "reliability.png", "confusion_matrix.png"):
        assert png in card and (folder / png).stat().st_size > 0


def test_evaluation_with_faces_reproduces_the_training_slices(
    trained_with_faces: tuple[Path, Manifest], tiny_lfw: Any, tiny_faces: Any
) -> None:
    from models.classifier.report import evaluate_report

    folder, manifest = trained_with_faces
    results, calibration = evaluate_report(folder, tiny_lfw.root, (tiny_faces.root, tiny_faces.cache))
    assert set(results) == {"lfw", "faces", "faces/crops", "faces/portraits"}
    assert results["faces"]["balanced_accuracy"] == pytest.approx(manifest.metrics["faces_balanced_accuracy"])
    # training resizes with torchvision, the served predictor with Pillow (within a grey level): nearly equal
    assert calibration["ece_after"] == pytest.approx(manifest.metrics["val_ece_after"], abs=0.01)
    assert calibration["temperature"] == manifest.hyperparameters["temperature"]


def test_a_warm_start_begins_from_the_base_weights_with_its_shape(
    tiny_trained: tuple[Path, Manifest],
    tiny_lfw: Any,
    tiny_recipe: Callable[..., TrainConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, _ = tiny_trained
    monkeypatch.setattr(train_module, "train_one_epoch", lambda *args, **kwargs: 0.0)  # no step: weights stay
    manifest = train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v2", widths=(2, 2), input_size=40, base=base))
    assert manifest.hyperparameters["widths"] == [4, 8] and manifest.input is not None and manifest.input.size == 32
    assert manifest.file("weights.safetensors").sha256 == load_artifact(base).file("weights.safetensors").sha256
    assert "warm-started" in manifest.provenance.method


def test_a_network_of_four_channels_or_fewer_trains_without_channels_last() -> None:
    # torch 2.14.1 aborts on AVX2-only CPUs in the backward of a strided 1x1 channels_last convolution that narrow
    # (FaceNet's first shortcut); the tiny recipe above (widths 4, 8) trains through this path
    assert memory_format((4, 8)) == torch.contiguous_format
    assert memory_format((8, 16)) == memory_format((32, 64, 128, 256)) == torch.channels_last
