"""Which predictor each slot gets, per backend setting; NST only on torch."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.model_plans import (
    build_classifier,
    build_detector,
    build_embedder,
    build_nst,
    build_onnx_detector,
    build_onnx_embedder,
    build_onnx_style,
    build_style,
    default_plans,
)
from app.settings import Settings
from models.onnx_backend import Runtime
from tests.support.fakes import fake_plans, make_fake_store
from tests.support.images import face_like_photo


def builders(settings: Settings | None) -> dict[str, object]:
    return {plan.slot: plan.build for plan in default_plans(settings)}


def test_plans_default_to_torch_with_an_nst_slot() -> None:
    plans = builders(None)
    assert list(plans) == ["detector", "classifier", "style", "nst", "gallery", "embedder"]
    assert (plans["detector"], plans["classifier"], plans["style"], plans["nst"]) == (
        build_detector,
        build_classifier,
        build_style,
        build_nst,
    )
    assert builders(Settings()) == plans


def test_each_role_takes_its_own_backend_and_onnx_style_has_no_nst_slot() -> None:
    plans = builders(Settings(detector_backend="onnx", style_backend="openvino", onnx_threads=2))
    assert list(plans) == ["detector", "classifier", "style", "gallery", "embedder"]
    detector, style = plans["detector"], plans["style"]
    assert (
        isinstance(detector, partial)
        and detector.func is build_onnx_detector
        and detector.keywords == {"runtime": Runtime("onnxruntime", threads=2)}
    )
    assert isinstance(style, partial) and style.func is build_onnx_style
    assert style.keywords == {"runtime": Runtime("openvino", threads=2, precision="auto")}
    assert "nst" not in plans
    assert plans["classifier"] is build_classifier


def test_the_embedder_takes_its_own_backend() -> None:
    assert builders(None)["embedder"] is build_embedder
    embedder = builders(Settings(embedder_backend="openvino"))["embedder"]
    assert isinstance(embedder, partial) and embedder.func is build_onnx_embedder
    assert embedder.keywords == {"runtime": Runtime("openvino", precision="auto")}


def test_backends_come_from_the_environment_and_unknown_ones_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPCANVAS_CLASSIFIER_BACKEND", "onnx")
    settings = Settings()
    assert (settings.detector_backend, settings.classifier_backend, settings.style_backend) == (
        "torch",
        "onnx",
        "torch",
    )
    assert (
        settings.uses_torch
        and not Settings(**{f"{r}_backend": "onnx" for r in ("detector", "classifier", "style", "embedder")}).uses_torch
    )  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(style_backend="tensorrt")  # type: ignore[arg-type]


def test_nst_on_the_onnx_style_backend_is_a_clear_422(tmp_path: Path) -> None:
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
    assert response.status_code == 422
    assert response.json()["detail"] == "method=nst needs the torch backend; this service runs style_backend=onnx"
