"""Importing ultralytics checkpoints: same outputs as the original module, sha256 checked before loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.artifact import ArtifactError, load_artifact, sha256_file
from models.detector import importer
from models.detector.network import build_yolo, decoded_predictions
from models.detector.predictor import FaceDetector

NAMES = {0: "cat", 1: "dog", 2: "face"}


class Payload:
    """A type outside ultralytics' allow-list: a restricted load must refuse a file that pickles it."""


@pytest.fixture(scope="module")
def original() -> torch.nn.Module:
    """A 3-class YOLOv5s, weights exact in float16 (as artifacts store them), BatchNorm stats not trivial."""
    torch.manual_seed(0)
    network = build_yolo("yolov5s.yaml", len(NAMES))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    network.half().float()
    network.names = dict(NAMES)
    return network.eval()


@pytest.fixture(scope="module")
def ultralytics_checkpoint(original: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The key layout of the public yolov5su.pt: the pickled DetectionModel under 'model', plus train_args."""
    path = tmp_path_factory.mktemp("checkpoints") / "fake-yolov5su.pt"
    torch.save({"model": original, "train_args": {"imgsz": 320, "data": "coco.yaml"}, "epoch": -1}, path)
    return path


def same_raw_outputs(original: torch.nn.Module, folder: Path) -> None:
    detector = FaceDetector.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))  # (B, 3, H, W)
    with torch.inference_mode():
        expected = decoded_predictions(original, images)  # (B, 4 + nc, A)
        got = decoded_predictions(detector.network, images)  # fused conv + BN, same function
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)


def test_an_ultralytics_checkpoint_with_the_expected_sha256_imports_its_classes_and_original_outputs(
    original: torch.nn.Module, ultralytics_checkpoint: Path, tmp_path: Path
) -> None:
    digest = sha256_file(ultralytics_checkpoint)
    manifest = importer.import_yolo(ultralytics_checkpoint, tmp_path / "v1", "yolov5su", "v1", digest.upper())
    assert manifest.labels == ["cat", "dog", "face"] and manifest.hyperparameters["nc"] == 3
    assert manifest.hyperparameters["cfg"] == "yolov5s.yaml" and manifest.input is not None
    assert manifest.input.size == 320 and manifest.task == "detect"
    assert digest in manifest.provenance.method
    same_raw_outputs(original, tmp_path / "v1")


def test_a_plain_state_dict_imports_with_generic_labels(original: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save(original.state_dict(), path)
    manifest = importer.import_yolo(path, tmp_path / "v1", "plain", "v1")
    assert manifest.labels == ["class0", "class1", "class2"]
    same_raw_outputs(original, tmp_path / "v1")


def test_a_wrong_sha256_is_refused_before_the_file_is_unpickled(
    ultralytics_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was read before its sha256 was checked")

    monkeypatch.setattr(importer, "read_checkpoint", must_not_load)
    with pytest.raises(ArtifactError, match="sha256"):
        importer.import_yolo(ultralytics_checkpoint, tmp_path / "v1", "x", "v1", expected_sha256="0" * 64)
    assert not (tmp_path / "v1").exists()


def test_a_checkpoint_with_unknown_pickled_types_needs_trust_pickle(original: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"model": original, "extra": Payload()}, path)
    with pytest.raises(ArtifactError, match="trust_pickle"):
        importer.import_yolo(path, tmp_path / "refused", "x", "v1")
    manifest = importer.import_yolo(path, tmp_path / "trusted", "x", "v1", trust_pickle=True)
    assert manifest.labels == list(NAMES.values())


def test_labels_that_do_not_match_the_class_count_are_refused(ultralytics_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="2 labels"):
        importer.import_yolo(ultralytics_checkpoint, tmp_path / "v1", "x", "v1", labels=["a", "b"])
