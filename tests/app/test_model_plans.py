"""Which engine each slot runs on: explicit backends, and ``auto`` per artifact, never silently; NST only on torch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app import engines
from app.engines import EngineChoice, choose_engine
from app.main import create_app
from app.model_plans import NETWORKS, default_plans, network_plan
from app.settings import EMBEDDED_STORE, Settings
from models.artifact import load_artifact
from models.onnx_backend import int8_file
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.images import face_like_photo

DETECTOR = EMBEDDED_STORE / "face-detector" / "v3"


def test_every_role_defaults_to_auto_and_nst_exists_where_torch_is_installed() -> None:
    settings = Settings()
    backends = (
        settings.detector_backend,
        settings.classifier_backend,
        settings.style_backend,
        settings.embedder_backend,
    )
    assert backends == ("auto",) * 4
    plans = default_plans(settings)
    assert [plan.slot for plan in plans] == ["detector", "classifier", "style", "embedder", "nst", "gallery"]
    assert all(plan.engine is not None for plan in plans)  # every slot can say what runs it


def test_auto_picks_openvino_then_onnxruntime_then_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = load_artifact(DETECTOR)
    choose = network_plan("detector", Settings()).engine
    assert choose is not None
    assert choose(manifest).engine == "openvino"
    monkeypatch.setattr(engines, "installed", lambda package: package == "onnxruntime")
    assert choose(manifest).engine == "onnxruntime"
    monkeypatch.setattr(engines, "installed", lambda package: False)
    assert choose(manifest) == EngineChoice("torch", "torch: neither openvino nor onnxruntime is installed")


def test_auto_runs_an_artifact_without_its_onnx_file_on_torch_and_says_why() -> None:
    manifest = load_artifact(DETECTOR)
    without = manifest.model_copy(update={"files": [f for f in manifest.files if f.path != "model.onnx"]})
    choice = choose_engine("auto", without, NETWORKS["detector"].onnx_files, "DEEPCANVAS_DETECTOR_BACKEND")
    assert choice.engine == "torch" and choice.reason.startswith("torch: the artifact has no model.onnx")


@pytest.mark.parametrize(("backend", "engine"), [("torch", "torch"), ("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_an_explicit_backend_is_kept_and_named_as_the_reason(backend: str, engine: str) -> None:
    choice = choose_engine(backend, load_artifact(DETECTOR), ("model.onnx",), "DEEPCANVAS_DETECTOR_BACKEND")
    assert (choice.engine, choice.reason) == (engine, f"DEEPCANVAS_DETECTOR_BACKEND={backend}")


def test_int8_files_run_only_where_the_manifest_makes_them_the_default_and_settings_allow() -> None:
    manifest = load_artifact(EMBEDDED_STORE / "face-gender" / "v3")  # float files only
    twin = manifest.file("model.onnx").model_copy(update={"path": int8_file("model.onnx")})
    shipped = manifest.model_copy(update={"files": [*manifest.files, twin]})
    default = shipped.model_copy(update={"defaults": {**shipped.defaults, "precision": "int8"}})
    files = NETWORKS["classifier"].onnx_files
    assert choose_engine("auto", shipped, files, "X").precision == "float32"  # shipped, not the default
    assert choose_engine("auto", default, files, "X").precision == "int8"
    assert choose_engine("auto", default, files, "X", allow_int8=False).precision == "float32"
    assert choose_engine("torch", default, files, "X").precision == "float32"  # torch runs the float weights
    # where the quantize command found int8 faster on OpenVINO only, ONNX Runtime keeps the float files
    openvino_only = default.model_copy(update={"defaults": {**default.defaults, "int8_engines": ["openvino"]}})
    assert choose_engine("openvino", openvino_only, files, "X").precision == "int8"
    assert choose_engine("onnx", openvino_only, files, "X").precision == "float32"


def test_backends_come_from_the_environment_and_unknown_ones_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPCANVAS_CLASSIFIER_BACKEND", "onnx")
    settings = Settings()
    assert (settings.detector_backend, settings.classifier_backend, settings.style_backend) == (
        "auto",
        "onnx",
        "auto",
    )
    with pytest.raises(ValidationError):
        Settings(style_backend="tensorrt")  # type: ignore[arg-type]


def test_the_onnx_style_backend_has_no_nst_slot() -> None:
    assert "nst" not in [plan.slot for plan in default_plans(Settings(style_backend="onnx"))]
    assert "nst" in [plan.slot for plan in default_plans(Settings(style_backend="torch"))]


def test_nst_without_an_nst_slot_is_a_clear_422_and_styles_says_so_beforehand(tmp_path: Path) -> None:
    store = make_fake_store(tmp_path / "store")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", style_backend="onnx")
    plans = [plan for plan in fake_plans() if plan.slot != "nst"]  # as default_plans builds them for onnx
    with TestClient(create_app(settings, plans)) as client:
        while client.get("/readyz").status_code != 200:
            pass
        response = client.post(
            "/stylize",
            files={"content": ("p.jpg", face_like_photo(64, 48))},
            data={"style_name": "red", "method": "nst"},
        )
        nst = client.get("/styles").json()["nst"]
    reason = "method=nst needs torch (NST needs autograd); this service runs style_backend=onnx without it"
    assert response.status_code == 422
    assert response.json()["detail"] == reason
    # the page reads this to leave NST out, rather than offering it and earning the 422
    assert nst == {"available": False, "reason": reason, "max_side": 512, "max_seconds": 55.0}


def test_the_shipped_classifier_runs_its_int8_file_by_default() -> None:
    manifest = load_artifact(EMBEDDED_STORE / "face-gender" / "v4")
    assert choose_engine("auto", manifest, NETWORKS["classifier"].onnx_files, "X").precision == "int8"
    # the card's two numbers: int8 shipped only within half a point of float32
    assert manifest.metrics["float32_val_balanced_accuracy"] - manifest.metrics["int8_val_balanced_accuracy"] <= 0.005


def test_the_embedded_store_serves_every_network_on_the_fastest_engine_and_says_so(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", warmup=False)
    with TestClient(create_app(settings)) as client:
        while client.get("/readyz").status_code != 200:
            pass
        body = client.get("/models").json()
    engines_by_slot = {e["slot"]: (e["engine"], e["reason"]) for e in body["engines"]}
    for slot in ("classifier", "style", "embedder"):
        assert engines_by_slot[slot] == ("openvino", "auto: the fastest engine installed (openvino)")
    assert engines_by_slot["detector"] == (
        "openvino",
        "auto: the fastest engine installed (openvino); views 640x480, 512x512, 480x640; micro-batches split "
        "across 2 streams (DEEPCANVAS_DETECTOR_STREAMS)",
    )
    assert engines_by_slot["nst"] == ("torch", "torch: NST needs autograd")
    assert engines_by_slot["gallery"][0] == "none"
    assert {m["role"]: m["engine"] for m in body["models"]}["detector"] == "openvino"


def test_each_slot_has_its_own_batch_limits_capped_by_the_runtime_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPCANVAS_BATCH_LIMITS", '{"detector": [2, 5.0], "classifier": [32, 1.0]}')
    store = make_fake_store(tmp_path / "store")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache")
    assert settings.batch_limits == {"detector": (2, 5.0), "classifier": (32, 1.0)}
    manager = create_app(settings, fake_plans()).state.manager
    manager.batch_limits = lambda: (8, 0.002)  # the runtime parameters: 8 items, 2 ms
    assert manager.slot_batch_limits("detector") == (2, 0.002)  # its own size, the parameters' shorter wait
    assert manager.slot_batch_limits("classifier") == (8, 0.001)  # capped to 8, its own shorter wait
    assert manager.slot_batch_limits("style") == (8, 0.002)  # not listed: the runtime parameters'


def test_the_default_batch_limits_run_the_detector_and_adain_alone_and_batch_the_classifier() -> None:
    limits = Settings().batch_limits
    assert limits["style"][0] == 1 and limits["classifier"][0] > limits["detector"][0] >= 1


def test_gallery_style_statistics_are_computed_when_the_models_load(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", warmup=False, style_backend="onnx")
    with TestClient(create_app(settings)) as client:
        while client.get("/readyz").status_code != 200:
            pass
        manager = client.app.state.manager  # type: ignore[attr-defined]
        gallery = manager.slots["gallery"].predictor
        statistics = manager.slots["style"].predictor.statistics
        deadline = time.monotonic() + 60
        while len(statistics) < len(gallery.names()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(statistics) == len(gallery.names()) and statistics.misses == len(gallery.names())
        response = client.post(
            "/stylize",
            files={"content": ("p.jpg", face_like_photo(64, 48))},
            data={"style_name": gallery.names()[0], "max_side": "256"},
        )
        assert response.status_code == 200
        assert statistics.hits == 1 and statistics.misses == len(gallery.names())  # the content alone was encoded
