"""The baseline: a minimal FastAPI app written the way a user would, for ``deepcanvas bench``.

One ``ultralytics.YOLO`` object answers /detect through ``YOLO.predict`` (or, when the store's detector is the
imported RFB network, one ONNX Runtime session with the resize, threshold and NMS its authors' demo does);
the plain predictors answer /classify and /stylize; sync handlers run in FastAPI's thread pool, one request
per call, no batching. Weights come from the same store DeepCanvas uses, so both sides run identical networks.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Response, UploadFile
from PIL import Image

from app.main import open_artifact_store
from app.settings import Settings
from models.detector.boxes import greedy_nms
from models.detector.rfb import ARCHITECTURE as RFB_ARCHITECTURE
from models.predictor import load_state, resolve_device


def _load(settings: Settings, role: str) -> tuple[Any, Any]:
    name, ref = settings.model_refs[role]  # type: ignore[index]
    return open_artifact_store(settings).fetch(name, ref)


Detect = Callable[[Image.Image], list[dict[str, Any]]]


def _detector(settings: Settings) -> Detect:
    """/detect's work for the store's detector, whichever architecture its manifest names."""
    folder, manifest = _load(settings, "detector")
    if manifest.architecture == RFB_ARCHITECTURE:
        return _rfb(folder)
    yolo, imgsz = _yolo(folder, manifest)

    def detect(picture: Image.Image) -> list[dict[str, Any]]:
        result = yolo.predict(picture, conf=0.25, iou=0.45, imgsz=imgsz, verbose=False)[0]
        pairs = zip(result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), strict=True)
        return [{"box": box, "score": score} for box, score in pairs]

    return detect


def _rfb(folder: Path) -> Detect:
    """The RFB ONNX file on ONNX Runtime, as its authors' demo runs it: 640×480, threshold 0.7, NMS 0.3."""
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])

    def detect(picture: Image.Image) -> list[dict[str, Any]]:
        pixels = np.asarray(picture.resize((640, 480)), dtype=np.float32)
        scores, boxes = session.run(None, {"input": ((pixels - 127) / 128).transpose(2, 0, 1)[None]})
        keep = scores[0, :, 1] > 0.7
        found = boxes[0][keep] * np.array([picture.width, picture.height] * 2, dtype=np.float32)  # (n, 4) pixels
        sure = scores[0, keep, 1]  # (n,)
        order = np.argsort(-sure)
        kept = order[greedy_nms(found[order], 0.3, 300)]
        return [
            {"box": box, "score": score} for box, score in zip(found[kept].tolist(), sure[kept].tolist(), strict=True)
        ]

    return detect


def _yolo(folder: Path, manifest: Any) -> tuple[Any, int]:
    """An ultralytics YOLO with the store's detector weights, and the side it was trained at.

    A checkpoint trained with ultralytics predicts at its training ``imgsz``; so does the baseline.
    """
    from ultralytics import YOLO

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
    detect_faces = _detector(settings)
    classifier = FaceClassifier.from_artifact(*_load(settings, "classifier"), resolve_device("cpu"))
    style = StyleTransfer.from_artifact(*_load(settings, "style"), resolve_device("cpu"))
    gallery = StyleGallery.from_artifact(*_load(settings, "gallery"))
    app = FastAPI(title="baseline")

    @app.get("/readyz")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/detect")
    def detect(image: UploadFile = File(...)) -> dict[str, Any]:
        return {"detections": detect_faces(Image.open(image.file).convert("RGB"))}

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
