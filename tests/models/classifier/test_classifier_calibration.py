"""Calibration: temperature scaling recovers a known temperature, ECE, and the served scores use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.artifact import load_artifact, write_manifest
from models.classifier.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    view_probabilities,
)
from models.classifier.pipeline import softmax
from models.classifier.predictor import FaceClassifier
from models.classifier.schedule import BudgetSchedule
from models.classifier.starter import make_untrained_classifier


def calibrated_sample(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(n, 1, 2)`` whose labels are drawn from ``softmax(logits / temperature)``: T is the right answer."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 1, 2))
    p_male = softmax(logits[:, 0] / temperature)[:, 1]
    return logits, (rng.random(n) < p_male).astype(np.int64)


def test_fitting_recovers_the_temperature_that_generated_the_labels() -> None:
    logits, labels = calibrated_sample(20_000, temperature=2.5)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.5, rel=0.06)
    assert negative_log_likelihood(logits, labels, fitted) < negative_log_likelihood(logits, labels, 1.0)


def test_scaling_by_the_fitted_temperature_brings_the_ece_down_to_sampling_noise() -> None:
    logits, labels = calibrated_sample(20_000, temperature=0.4)  # the raw scores are under-confident
    before = expected_calibration_error(view_probabilities(logits, 1.0), labels)
    after = expected_calibration_error(view_probabilities(logits, fit_temperature(logits, labels)), labels)
    assert before > 0.05 and after < 0.015


def test_temperature_keeps_every_decision_and_flip_views_average_their_probabilities() -> None:
    logits = np.random.default_rng(1).normal(0, 3, (50, 2, 2))
    for temperature in (0.5, 1.0, 3.0):
        probs = view_probabilities(logits, temperature)
        expected = (softmax(logits[:, 0] / temperature) + softmax(logits[:, 1] / temperature)) / 2
        np.testing.assert_allclose(probs, expected, atol=1e-12)
        assert (probs.argmax(1) == view_probabilities(logits, 1.0).argmax(1)).all()


def test_the_torch_predictor_divides_its_logits_by_the_manifest_temperature(tmp_path: Path) -> None:
    folder = tmp_path / "face-gender" / "v0"
    make_untrained_classifier(folder, seed=5)
    crop = Image.linear_gradient("L").resize((40, 50)).convert("RGB")
    plain = FaceClassifier.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    with torch.inference_mode():
        logits = plain.network(plain.transform(torch.from_numpy(np.array(crop)).permute(2, 0, 1))[None]).numpy()
    manifest = load_artifact(folder)
    write_manifest(
        folder, manifest.model_copy(update={"hyperparameters": manifest.hyperparameters | {"temperature": 0.25}})
    )
    scaled = FaceClassifier.from_artifact(folder, load_artifact(folder), torch.device("cpu")).predict([crop])[0]
    assert scaled.probabilities["male"] == pytest.approx(float(softmax(logits / 0.25)[0, 1]), abs=1e-5)


def test_the_onnx_predictor_applies_the_same_temperature_as_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from models.classifier.onnx_predictor import OnnxFaceClassifier
    from models.onnx_export import export_artifact

    folder = tmp_path / "face-gender" / "v0"
    manifest = make_untrained_classifier(folder, seed=6)
    write_manifest(
        folder, manifest.model_copy(update={"hyperparameters": manifest.hyperparameters | {"temperature": 0.3}})
    )
    manifest = export_artifact(folder)
    crops = [Image.linear_gradient("L").resize((40, 50)).convert("RGB"), Image.new("RGB", (30, 30), (200, 90, 80))]
    ours = FaceClassifier.from_artifact(folder, manifest, torch.device("cpu")).predict(crops)
    theirs = OnnxFaceClassifier.from_artifact(folder, manifest).predict(crops)
    for a, b in zip(ours, theirs, strict=True):
        assert a.label == b.label and a.score == pytest.approx(b.score, abs=1e-4)


def test_a_budget_schedule_warms_up_decays_and_is_done_at_the_end_of_its_steps() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = BudgetSchedule(optimizer, max_lr=1.0, total_steps=100, budget_s=None)
    lrs = []
    while not schedule.done:
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert len(lrs) == 100 and max(lrs) == pytest.approx(1.0, abs=0.01) and lrs[-1] < 0.05
    assert lrs[0] < lrs[3] and lrs[10] > lrs[50] > lrs[90]


def test_a_budget_schedule_ends_when_its_time_is_spent_and_resumes_its_progress() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = BudgetSchedule(optimizer, max_lr=1.0, total_steps=10**6, budget_s=100.0)
    schedule.load_state_dict({"steps": 5, "elapsed_s": 99.999})
    assert schedule.steps == 5 and 0.99 < schedule.progress <= 1.0
    schedule.load_state_dict({"steps": 5, "elapsed_s": 100.0})
    assert schedule.done
