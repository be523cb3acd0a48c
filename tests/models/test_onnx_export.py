"""ONNX export of artifacts, and the ONNX predictors' refusals (missing files, unavailable devices)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from models.artifact import ArtifactError, load_artifact
from models.classifier.onnx_predictor import OnnxFaceClassifier
from models.classifier.starter import make_untrained_classifier
from models.detector.onnx_predictor import OnnxFaceDetector
from models.detector.types import DetectRequest
from models.onnx_backend import execution_providers, session_options
from models.onnx_export import export_artifact, export_command
from models.style.onnx_predictor import OnnxStyleTransfer
from models.style.types import StylizeRequest
from tests.models.conftest import ExportedStore

ONNX_FILES = {"face-detector": ["model.onnx"], "face-gender": ["model.onnx"], "adain": ["encoder.onnx", "decoder.onnx"]}


@pytest.mark.parametrize("name", ONNX_FILES)
def test_export_lists_the_onnx_files_and_keeps_the_rest_of_the_manifest(
    exported_store: ExportedStore, name: str
) -> None:
    before, after = exported_store.before[name], exported_store.after[name]
    assert [e.path for e in after.files] == [e.path for e in before.files] + ONNX_FILES[name]
    assert after.files[: len(before.files)] == before.files
    unchanged = {"files", "hyperparameters"}
    assert after.model_dump(exclude=unchanged) == before.model_dump(exclude=unchanged)
    onnx_record = after.hyperparameters["onnx"]
    assert {k: v for k, v in after.hyperparameters.items() if k != "onnx"} == before.hyperparameters
    assert onnx_record["opset"] >= 17 and {"torch", "onnx", "onnxscript", "exporter"} <= set(onnx_record)
    assert load_artifact(exported_store.folder(name)) == exported_store.after[name]  # hashes verified


@pytest.mark.parametrize("name", ONNX_FILES)
def test_exported_graphs_have_a_dynamic_batch(exported_store: ExportedStore, name: str) -> None:
    for path in ONNX_FILES[name]:
        graph = onnx.load(str(exported_store.folder(name) / path)).graph
        assert len(graph.input) == 1 and graph.input[0].type.tensor_type.shape.dim[0].dim_param


def test_exporting_again_replaces_the_onnx_entries(exported_store: ExportedStore, tmp_path: Path) -> None:
    folder = tmp_path / "v0"
    shutil.copytree(exported_store.folder("face-gender"), folder)
    manifest = export_artifact(folder)
    assert [e.path for e in manifest.files] == ["weights.safetensors", "model.onnx"]
    assert manifest.hyperparameters["widths"] == exported_store.after["face-gender"].hyperparameters["widths"]


def test_a_gallery_has_nothing_to_export(exported_store: ExportedStore) -> None:
    with pytest.raises(ArtifactError, match="no network"):
        export_artifact(exported_store.root / "style-gallery" / exported_store.before["style-gallery"].version)


def test_export_command_exits_with_an_error_for_a_gallery_and_exports_a_classifier(
    exported_store: ExportedStore, tmp_path: Path
) -> None:
    app = typer.Typer()
    app.command()(export_command)
    gallery = exported_store.root / "style-gallery" / exported_store.before["style-gallery"].version
    refused = CliRunner().invoke(app, [str(gallery)])
    assert refused.exit_code == 1 and "no network" in refused.output
    make_untrained_classifier(tmp_path / "v0")
    exported = CliRunner().invoke(app, [str(tmp_path / "v0")])
    assert exported.exit_code == 0 and "model.onnx" in exported.output


@pytest.mark.parametrize(
    ("predictor", "name"),
    [(OnnxFaceDetector, "face-detector"), (OnnxFaceClassifier, "face-gender"), (OnnxStyleTransfer, "adain")],
)
def test_onnx_predictors_refuse_an_artifact_that_was_never_exported(
    exported_store: ExportedStore, predictor: type, name: str
) -> None:
    folder, manifest = exported_store.folder(name), exported_store.before[name]
    with pytest.raises(ArtifactError, match="deepcanvas models export"):
        predictor.from_artifact(folder, manifest, "cpu")


def test_onnx_predictors_refuse_another_architecture(exported_store: ExportedStore) -> None:
    manifest = exported_store.after["adain"].model_copy(update={"architecture": "resnet"})
    with pytest.raises(ArtifactError, match="architecture"):
        OnnxStyleTransfer.from_artifact(exported_store.folder("adain"), manifest, "cpu")


def test_devices_map_to_providers_and_unavailable_ones_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ArtifactError, match="not supported"):
        execution_providers("mps")
    monkeypatch.setattr("onnxruntime.get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ArtifactError, match="CUDAExecutionProvider"):
        execution_providers("cuda:1")
    monkeypatch.setattr(
        "onnxruntime.get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert execution_providers("cuda:1")[0] == ("CUDAExecutionProvider", {"device_id": 1})


def test_session_options_optimise_fully_and_take_threads_only_when_given() -> None:
    import onnxruntime as ort

    assert session_options(3).intra_op_num_threads == 3
    assert session_options().intra_op_num_threads == ort.SessionOptions().intra_op_num_threads
    assert session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_onnx_predictors_warm_up_and_answer_empty_batches_and_extreme_shapes(exported_store: ExportedStore) -> None:
    def built(predictor: type, name: str) -> Any:
        return predictor.from_artifact(exported_store.folder(name), exported_store.after[name], "cpu")

    detector, classifier = built(OnnxFaceDetector, "face-detector"), built(OnnxFaceClassifier, "face-gender")
    style = built(OnnxStyleTransfer, "adain")
    strip, tiny = Image.new("RGB", (16, 900), (90, 30, 200)), Image.new("RGB", (16, 16), (10, 200, 40))
    for predictor in (detector, classifier, style):
        predictor.warmup()
        assert predictor.predict([]) == []
    assert len(detector.predict([DetectRequest(strip, 0.0, 1.0, 2, 32), DetectRequest(tiny, 0.0, 1.0, 2, 640)])) == 2
    assert len(classifier.predict([strip, tiny])) == 2
    painted = style.predict(
        [StylizeRequest(strip, (tiny,), (1.0,), 0.5, True, 512), StylizeRequest(tiny, (strip,), (1.0,), 1.0, False, 16)]
    )
    assert [image.size for image in painted] == [(9, 512), (16, 16)]  # the strip's proportions (network: 16x512)
