"""Opening exported networks on either engine: sessions behave alike, and failures are artifact errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from models.artifact import ArtifactError
from models.onnx_backend import Runtime, open_session, openvino_config
from tests.models.conftest import ExportedStore

ENGINES = [Runtime("onnxruntime", threads=1), Runtime("openvino", threads=1, precision="f32")]


@pytest.mark.parametrize("runtime", ENGINES, ids=["onnxruntime", "openvino"])
def test_both_engines_run_the_same_classifier_file_with_a_dynamic_batch(
    exported_store: ExportedStore, runtime: Runtime
) -> None:
    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    session = open_session(folder, manifest, "model.onnx", "cpu", runtime)
    assert session.output_shape[-1] == len(manifest.labels)
    batch = np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32)
    first = session.run(batch)
    assert first.shape == (5, len(manifest.labels)) and first.dtype == np.float32
    np.testing.assert_allclose(session.run(batch[:2]), first[:2], atol=1e-5)  # batch size changes between calls
    assert not np.shares_memory(first, session.run(batch))  # results are the caller's, not the engine's buffer


@pytest.mark.parametrize(("engine", "package"), [("onnxruntime", "onnxruntime"), ("openvino", "openvino")])
def test_a_missing_engine_package_is_an_artifact_error(
    exported_store: ExportedStore, monkeypatch: pytest.MonkeyPatch, engine: str, package: str
) -> None:
    from models import onnx_backend

    onnx_backend._openvino_core.cache_clear()
    monkeypatch.setitem(sys.modules, package, None)  # what an image without the package looks like
    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    with pytest.raises(ArtifactError, match=f"the {package} package is not installed"):
        open_session(folder, manifest, "model.onnx", "cpu", Runtime(engine))  # type: ignore[arg-type]
    onnx_backend._openvino_core.cache_clear()


def test_a_corrupt_onnx_file_a_missing_one_and_an_unsupported_device_are_refused(
    exported_store: ExportedStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    with pytest.raises(ArtifactError, match=r"has no encoder\.onnx"):
        open_session(folder, manifest, "encoder.onnx", "cpu", Runtime("openvino"))
    with pytest.raises(ArtifactError, match="not supported by the OpenVINO backend"):
        open_session(folder, manifest, "model.onnx", "cuda", Runtime("openvino"))
    broken = tmp_path_factory.mktemp("broken")
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    for engine in ("onnxruntime", "openvino"):
        with pytest.raises(ArtifactError, match=rf"{engine} cannot load model\.onnx"):
            open_session(broken, manifest, "model.onnx", "cpu", Runtime(engine))  # type: ignore[arg-type]


def test_openvino_options_follow_the_runtime() -> None:
    assert openvino_config(Runtime("openvino")) == {"PERFORMANCE_HINT": "LATENCY"}
    assert openvino_config(Runtime("openvino", threads=2, precision="bf16")) == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": 2,
        "INFERENCE_PRECISION_HINT": "bf16",
    }
    assert openvino_config(Runtime("openvino", precision="bf16"), streams=2) == {
        "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": 2,
        "INFERENCE_PRECISION_HINT": "bf16",
    }
