"""Detector training end to end on a tiny synthetic data set: ultralytics trains, we pack the artifact."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.artifact import Manifest, load_artifact
from models.detector.predictor import DetectRequest, FaceDetector
from models.detector.synthesize import CompositeRecipe, synthesize_dataset
from models.detector.train import (
    DetectorTrainConfig,
    base_record,
    cpu_threads,
    epochs_run,
    portable_data_path,
    recipe_summary,
    run_state,
    train_detector,
    trainer_arguments,
)
from tests.support.images import draw_face_crops


def write_face_photos(folder: Path) -> None:
    """Two 'real photos' with hand-drawn boxes for the evaluation step: faces pasted on grey."""
    (folder / "images").mkdir(parents=True)
    face = Image.open(next((folder.parent / "faces").rglob("*.png"))).resize((40, 40))
    entries = {}
    for name, (x, y) in {"one.jpg": (10, 20), "two.jpg": (60, 30)}.items():
        photo = Image.new("RGB", (120, 100), (90, 100, 110))
        photo.paste(face, (x, y))
        photo.save(folder / "images" / name)
        entries[name] = {"split": "test", "boxes_xywh": [[x, y, 40, 40]]}
    (folder / "boxes.json").write_text(json.dumps(entries))


@dataclass(frozen=True)
class TrainedRun:
    cfg: DetectorTrainConfig
    manifest: Manifest


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    root = tmp_path_factory.mktemp("detector-train")
    faces = draw_face_crops(root / "faces")
    recipe = CompositeRecipe(size=96, face_side=(0.2, 0.45))
    data = synthesize_dataset(root / "data", faces, (), count=8, recipe=recipe, val_fraction=0.25, progress=False)
    write_face_photos(root / "photos")
    cfg = DetectorTrainConfig(
        data=data,
        out_dir=root / "run",
        epochs=1,
        imgsz=64,
        batch=4,
        version="v-test",
        eval_boxes=root / "photos" / "boxes.json",
        eval_images=root / "photos" / "images",
        command="pytest",
        figures=root / "figures",  # never the checkout's runs/figures
    )
    return TrainedRun(cfg, train_detector(cfg))


@pytest.mark.slow
def test_training_writes_an_artifact_that_face_detector_loads_and_runs(trained_run: TrainedRun) -> None:
    folder = trained_run.cfg.artifact_dir
    detector = FaceDetector.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    image = Image.new("RGB", (80, 60), (100, 120, 140))
    (detections,) = detector.predict([DetectRequest(image=image, conf=0.0, iou=0.45, max_det=5, imgsz=64)])
    assert len(detections) <= 5 and all(d.label == "face" for d in detections)


@pytest.mark.slow
def test_the_manifest_records_the_recipe_training_and_both_evaluations(trained_run: TrainedRun) -> None:
    manifest = trained_run.manifest
    assert manifest.provenance.method.startswith("trained: ultralytics YOLOv5s on synthetic composites (8 ")
    assert manifest.provenance.command == "pytest" and manifest.input is not None and manifest.input.size == 64
    assert manifest.hyperparameters["data_recipe"]["count"] == 8
    assert manifest.hyperparameters["training"]["epochs"] == 1 and manifest.labels == ["face"]
    assert {"synthetic_val_map50", "face_boxes_ap50", "face_boxes_recall"} <= set(manifest.metrics)
    assert manifest.metrics["face_boxes_n_faces"] == 2
    assert (trained_run.cfg.artifact_dir / "MODEL_CARD.md").is_file()
    assert trained_run.cfg.figures is not None and (trained_run.cfg.figures / "sample_one.png").is_file()
    assert not list(trained_run.cfg.artifact_dir.glob("sample_*.png"))  # drawn on the photos: never shipped


@pytest.mark.slow
def test_a_rerun_of_a_finished_run_repacks_without_training_again(trained_run: TrainedRun) -> None:
    last = trained_run.cfg.run_dir / "weights" / "last.pt"
    before = last.stat().st_mtime_ns
    manifest = train_detector(trained_run.cfg)
    assert last.stat().st_mtime_ns == before
    assert manifest.file("weights.safetensors").sha256 == trained_run.manifest.file("weights.safetensors").sha256


def test_run_state_tells_a_resumable_checkpoint_from_a_finished_one(tmp_path: Path) -> None:
    # ultralytics saves the optimizer state after each epoch and strips it once training has finished.
    last = tmp_path / "last.pt"
    assert run_state(last) == "new"
    torch.save({"epoch": 3, "model": None, "optimizer": {"state": {}, "param_groups": []}}, last)
    assert run_state(last) == "unfinished"
    torch.save({"epoch": -1, "model": None, "optimizer": None}, last)
    assert run_state(last) == "finished"


def test_a_time_budget_goes_to_ultralytics_and_the_provenance_counts_the_epochs_run(tmp_path: Path) -> None:
    cfg = DetectorTrainConfig(data=tmp_path / "data.yaml", out_dir=tmp_path / "run", epochs=300, hours=1.5, threads=2)
    assert trainer_arguments(cfg)["time"] == 1.5
    assert "time" not in trainer_arguments(DetectorTrainConfig(data=cfg.data, out_dir=cfg.out_dir))
    assert recipe_summary({}, cfg) == "300 epochs at 640 px (a 1.5 h budget on cpu, 2 threads), from scratch"
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "results.csv").write_text("epoch,loss\n1,0.9\n2,0.8\n3,0.7\n")
    assert epochs_run(cfg.run_dir) == 3
    assert recipe_summary({}, cfg) == "3 epochs at 640 px (a 1.5 h budget on cpu, 2 threads), from scratch"


def test_cpu_training_uses_every_thread_asked_for_instead_of_one_fewer_than_the_cores() -> None:
    from ultralytics.utils.torch_utils import select_device

    before = torch.get_num_threads()
    try:
        with cpu_threads(3):
            select_device("cpu", verbose=False)
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert DetectorTrainConfig(data=Path("d.yaml"), out_dir=Path("o")).torch_threads() == (os.cpu_count() or 1)
    assert DetectorTrainConfig(data=Path("d.yaml"), out_dir=Path("o"), threads=2).torch_threads() == 2


def test_a_warm_start_records_its_base_and_the_base_of_its_base(
    tmp_path: Path, starter_detector_artifact: tuple[Path, Manifest]
) -> None:
    folder, manifest = starter_detector_artifact
    cfg = DetectorTrainConfig(data=tmp_path / "set" / "data.yaml", out_dir=tmp_path / "run", base_artifact=folder)
    record = base_record(folder)
    assert record is not None and (record["name"], record["version"]) == (manifest.name, manifest.version)
    assert record["weights_sha256"] == manifest.file("weights.safetensors").sha256 and record["base"] is None
    assert recipe_summary({}, cfg).endswith(f"warm-started from {manifest.name}/{manifest.version}")
    assert recipe_summary({}, cfg).startswith("+30 epochs at 640 px")


def test_the_data_path_is_recorded_relative_to_its_data_set_folder(tmp_path: Path) -> None:
    assert portable_data_path(tmp_path / "detector-v2" / "data.yaml") == "detector-v2/data.yaml"
    summary = recipe_summary({"summary": "1 real photo"}, DetectorTrainConfig(data=Path("d"), out_dir=tmp_path))
    assert summary.startswith("1 real photo; 30 epochs")
