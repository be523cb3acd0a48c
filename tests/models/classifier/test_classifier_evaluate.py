from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.artifact import Manifest, load_artifact
from models.classifier.evaluate import classification_metrics, evaluate_classifier, record_flip_tta, write_model_card
from models.classifier.train import TrainConfig, train_classifier


def test_evaluation_of_the_artifact_reproduces_the_test_metrics_in_its_manifest(
    tiny_trained: tuple[Path, Manifest], tiny_lfw: Any
) -> None:
    folder, manifest = tiny_trained
    result = evaluate_classifier(folder, tiny_lfw.root, split="test", seed=0)
    assert result["n"] == manifest.metrics["n_test"]
    for key in ("accuracy", "balanced_accuracy", "recall_female", "recall_male"):
        assert result[key] == pytest.approx(manifest.metrics[key])


def test_evaluation_of_each_split_counts_its_images(tiny_trained: tuple[Path, Manifest], tiny_lfw: Any) -> None:
    folder, manifest = tiny_trained
    sizes = [evaluate_classifier(folder, tiny_lfw.root, split=split)["n"] for split in ("train", "val")]
    assert sizes == [manifest.metrics["n_train"], manifest.metrics["n_val"]]


def test_classification_metrics_of_a_hand_made_case() -> None:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])
    result = classification_metrics([0, 0, 1, 1], probabilities, ["female", "male"])
    assert result["confusion_matrix"] == [[1, 1], [0, 2]]
    assert (result["accuracy"], result["recall_female"], result["recall_male"]) == (0.75, 0.5, 1.0)
    assert result["balanced_accuracy"] == 0.75
    assert result["roc_auc"] == 1.0


def test_model_card_holds_a_metrics_table_and_both_plots(tmp_path: Path) -> None:
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.6, 0.4]])
    metrics = classification_metrics([0, 0, 1, 1], probabilities, ["female", "male"])
    card = write_model_card(tmp_path / "card" / "README.md", metrics)
    text = card.read_text()
    assert card.name == "README.md"
    assert "| accuracy | 0.5000 |" in text and "| roc_auc | 0.7500 |" in text
    for png in ("confusion_matrix.png", "roc_curve.png"):
        assert f"]({png})" in text
        assert (card.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recording_flip_tta_decides_on_validation_and_keeps_the_weights(
    tiny_trained: tuple[Path, Manifest], tiny_lfw: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "v1"
    shutil.copytree(tiny_trained[0], folder)
    before = load_artifact(folder)
    result = record_flip_tta(folder, tiny_lfw.root)
    val = {flip: evaluate_classifier(folder, tiny_lfw.root, "val", flip=flip) for flip in (False, True)}
    assert result["val_accuracy_plain"] == pytest.approx(val[False]["accuracy"])
    assert result["val_accuracy_flip"] == pytest.approx(val[True]["accuracy"])
    helps = all(val[True][k] >= val[False][k] for k in ("accuracy", "balanced_accuracy"))
    after = load_artifact(folder)
    weights = "weights.safetensors"
    assert result["recorded"] is helps and after.file(weights) == before.file(weights)  # the weights never change
    if not helps:
        assert after == before
        return
    served = evaluate_classifier(folder, tiny_lfw.root, "test")
    assert served["flip_tta"] is True and after.hyperparameters["flip_tta"] is True
    assert after.metrics["accuracy"] == pytest.approx(served["accuracy"])
    assert "flip test-time augmentation" in after.provenance.method
    with pytest.raises(ValueError, match="already serves with flip_tta"):
        record_flip_tta(folder, tiny_lfw.root)


def test_training_with_flip_tta_selects_tests_and_serves_with_it(
    tiny_lfw: Any, tiny_recipe: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    manifest = train_classifier(tiny_recipe(tiny_lfw.root, tmp_path / "v2", flip_tta=True))
    assert manifest.hyperparameters["flip_tta"] is True
    served = evaluate_classifier(tmp_path / "v2", tiny_lfw.root, "test")
    assert served["flip_tta"] is True and served["accuracy"] == pytest.approx(manifest.metrics["accuracy"])
    plain = evaluate_classifier(tmp_path / "v2", tiny_lfw.root, "test", flip=False)
    assert plain["flip_tta"] is False
