"""The baseline: a minimal FastAPI app written the way a user would, for ``deepcanvas bench``.

One ``ultralytics.YOLO`` object answers /detect through ``YOLO.predict``; the plain predictors answer
/classify and /stylize; sync handlers run in FastAPI's thread pool, one request per call, no batching.
Weights come from the same store DeepCanvas uses, so both sides run identical networks.
"""

from __future__ import annotations

import io
import os
from typing import Any

from fastapi import FastAPI, File, Form, Response, UploadFile
from PIL import Image

from app.main import open_artifact_store
from app.settings import Settings
from models.predictor import load_state, resolve_device


def _load(settings: Settings, role: str) -> tuple[Any, Any]:
    name, ref = settings.model_refs[role]  # type: ignore[index]
    return open_artifact_store(settings).fetch(name, ref)


def _yolo(settings: Settings) -> tuple[Any, int]:
    """An ultralytics YOLO with the store's detector weights, and the side it was trained at.

    A checkpoint trained with ultralytics predicts at its training ``imgsz``; so does the baseline.
    """
    from ultralytics import YOLO

    folder, manifest = _load(settings, "detector")
    from models.detector.network import build_yolo

    cfg = manifest.hyperparameters["cfg"]
    network: Any = build_yolo(cfg, len(manifest.labels))
    network.load_state_dict(load_state(folder, manifest, "weights.safetensors", resolve_device("cpu")))
    network.names = dict(enumerate(manifest.labels))
    model = YOLO(cfg)
    model.model = network  # as if loaded from the user's own .pt of these weights
    return model, manifest.input.size if manifest.input else 640


def create_baseline() -> FastAPI:
    from models.classifier.predictor import FaceClassifier
    from models.style.gallery import StyleGallery
    from models.style.predictor import StyleTransfer, StylizeRequest

    settings = Settings(store=os.environ.get("DEEPCANVAS_STORE", Settings().store))
    yolo, imgsz = _yolo(settings)
    classifier = FaceClassifier.from_artifact(*_load(settings, "classifier"), resolve_device("cpu"))
    style = StyleTransfer.from_artifact(*_load(settings, "style"), resolve_device("cpu"))
    gallery = StyleGallery.from_artifact(*_load(settings, "gallery"))
    app = FastAPI(title="baseline")

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/detect")
    def detect(image: UploadFile = File(...)) -> dict[str, Any]:
        picture = Image.open(image.file).convert("RGB")
        result = yolo.predict(picture, conf=0.25, iou=0.45, imgsz=imgsz, verbose=False)[0]
        return {
            "detections": [
                {"box": box, "score": score}
                for box, score in zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), strict=True)
            ]
        }

    @app.post("/classify")
    def classify(image: UploadFile = File(...)) -> dict[str, Any]:
        [result] = classifier.predict([Image.open(image.file).convert("RGB")])
        return {"label": result.label, "score": result.score}

    @app.post("/stylize")
    def stylize(content: UploadFile = File(...), style_name: str = Form(...), max_side: int = Form(512)) -> Response:
        request = StylizeRequest(
            Image.open(content.file).convert("RGB"), (gallery.image(style_name),), (1.0,), 1.0, False, max_side
        )
        [painted] = style.predict([request])
        buffer = io.BytesIO()
        painted.save(buffer, format="PNG", compress_level=1)
        return Response(buffer.getvalue(), media_type="image/png")

    return app
