"""int8 twins ship only when the quality measure holds, and become the default the engines choose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models.artifact import load_artifact, pack_artifact
from models.onnx_backend import OrtSession, Runtime, open_session
from models.quantize import quantize_artifact


def conv_artifact(folder: Path) -> Path:
    """An artifact holding one small conv network as ``model.onnx``, and a model card."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "weight")
    nodes = [
        helper.make_node("Conv", ["image", "weight"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 8, 16, 16])],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(folder / "model.onnx"))
    (folder / "MODEL_CARD.md").write_text("# conv\n")
    pack_artifact(
        folder, name="conv", version="v1", task="classify", architecture="conv", provenance={"method": "test"}
    )
    return folder


def calibration(_: str) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.random((1, 3, 16, 16), dtype=np.float32) for _ in range(8)]


def test_an_int8_twin_within_half_a_point_ships_as_the_default_with_both_numbers(tmp_path: Path) -> None:
    folder = conv_artifact(tmp_path / "conv")
    scores = {False: 0.950, True: 0.946}
    speed = {"openvino": 0.9, "onnxruntime": 1.6}
    result = quantize_artifact(
        folder, ["model.onnx"], calibration, scores.__getitem__, "val_accuracy", speed=lambda _: speed
    )
    manifest = load_artifact(folder)  # re-verifies every hash, the twin's and the card's included
    assert result.shipped and result.files == ["model.int8.onnx"]
    assert manifest.defaults["precision"] == "int8"
    assert manifest.defaults["int8_engines"] == ["onnxruntime"]  # faster there only
    assert (manifest.metrics["float32_val_accuracy"], manifest.metrics["int8_val_accuracy"]) == (0.950, 0.946)
    assert "| int8 | 0.9460 |" in (folder / "MODEL_CARD.md").read_text()
    session = open_session(folder, manifest, "model.onnx", "cpu", Runtime(int8=True))
    assert isinstance(session, OrtSession)
    ops = {node.op_type for node in onnx.load(str(folder / "model.int8.onnx")).graph.node}
    assert "QuantizeLinear" in ops
    float_out = open_session(folder, manifest, "model.onnx", "cpu").run(calibration("")[0])
    np.testing.assert_allclose(session.run(calibration("")[0]), float_out, atol=0.1 * np.abs(float_out).max())


def test_an_int8_twin_that_costs_more_than_half_a_point_is_not_shipped(tmp_path: Path) -> None:
    folder = conv_artifact(tmp_path / "conv")
    scores = {False: 0.950, True: 0.944}
    result = quantize_artifact(
        folder, ["model.onnx"], calibration, scores.__getitem__, "val_accuracy", speed=lambda _: {"openvino": 2.0}
    )
    manifest = load_artifact(folder)
    assert not result.shipped and result.drop_points == pytest.approx(0.6)
    assert "precision" not in manifest.defaults
    assert not (folder / "model.int8.onnx").exists() and [e.path for e in manifest.files if "int8" in e.path] == []
    assert "not shipped" in (folder / "MODEL_CARD.md").read_text()


def test_an_int8_twin_that_is_nowhere_faster_is_not_shipped(tmp_path: Path) -> None:
    folder = conv_artifact(tmp_path / "conv")
    scores = {False: 0.950, True: 0.950}
    slower = {"openvino": 0.95, "onnxruntime": 0.5}
    result = quantize_artifact(folder, ["model.onnx"], calibration, scores.__getitem__, "acc", speed=lambda _: slower)
    assert not result.shipped and result.faster_on == [] and "precision" not in load_artifact(folder).defaults
    assert "openvino 0.95x" in (folder / "MODEL_CARD.md").read_text()


def test_the_speedups_are_measured_on_every_installed_engine(tmp_path: Path) -> None:
    from models.quantize import int8_speedups

    folder = conv_artifact(tmp_path / "conv")
    shipped = quantize_artifact(
        folder, ["model.onnx"], calibration, {False: 0.9, True: 0.9}.__getitem__, "acc", speed=lambda _: {"x": 2.0}
    )
    assert shipped.shipped  # the twin stays, listed in the manifest
    speedups = int8_speedups(folder, load_artifact(folder), ["model.onnx"], calibration)
    assert set(speedups) == {"openvino", "onnxruntime"} and all(ratio > 0 for ratio in speedups.values())
