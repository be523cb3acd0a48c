"""The peer a user would deploy instead: LitServe serving the same exported networks on the same engine.

``python -m bench.litserve_app --port N [--max-batch-size 8] [--batch-timeout-ms 5] [--plain]``, for
``deepcanvas bench --peer litserve``. One ``LitAPI`` per endpoint, written as LitServe's documentation
shows: ``decode_request`` reads the multipart upload with PIL, ``predict`` runs a batch through the same
ONNX predictors (and pre- and post-processing) DeepCanvas runs, on the float ONNX files of the store's
artifacts and the engine the settings name (``auto``: OpenVINO), ``encode_response`` returns JSON. LitServe's
own dynamic batching is on: it collects up to ``max_batch_size`` requests or waits ``batch_timeout``, whichever
first.
Each API runs in its own inference worker process; one uvicorn process serves HTTP.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import litserve as ls
import typer
from fastapi import Response
from PIL import Image

from app.main import open_artifact_store
from app.model_plans import (
    build_gallery,
    build_onnx_classifier,
    build_onnx_detector,
    build_onnx_style,
    served_manifest,
)
from app.settings import Backend, Role, Settings
from models.detector.types import TILE_ABOVE, DetectRequest
from models.style.style_cache import StyleStatistics
from models.style.types import StylizeRequest

BUILDERS = {"detector": build_onnx_detector, "classifier": build_onnx_classifier, "style": build_onnx_style}


def load_predictor(settings: Settings, role: Role) -> tuple[Any, Any]:
    """The role's predictor on the settings' ONNX backend, and its manifest."""
    name, ref = settings.model_refs[role]
    folder, manifest = open_artifact_store(settings).fetch(name, ref)
    backend = getattr(settings, f"{role}_backend")
    assert backend != "torch", "the LitServe peer runs the exported networks (set the backends to onnx or openvino)"
    engine: Backend = "openvino" if backend == "auto" else backend  # the peer serves the float files: no int8
    served = served_manifest(role, manifest, settings)  # DEEPCANVAS_DETECTOR_VIEWS=false: the authors' graphs alone
    return BUILDERS[role](folder, served, "cpu", runtime=settings.runtime(engine)), manifest


def read_upload(upload: Any) -> Image.Image:
    return Image.open(io.BytesIO(upload.file.read())).convert("RGB")


class BatchedAPI(ls.LitAPI):
    """``predict`` takes a list when batching is on and one item when it is off; the predictors take lists.

    ``decode_request(self, request)`` stays unannotated: LitServe reads the annotation to choose how to parse
    the body, and without one it hands over the parsed form (a mapping of fields and uploads).
    """

    predictor: Any

    def predict(self, x: Any) -> Any:
        if self.max_batch_size > 1:
            return self.predictor.predict(list(x))
        return self.predictor.predict([x])[0]


class DetectAPI(BatchedAPI):
    def setup(self, device: str) -> None:
        self.predictor, manifest = load_predictor(Settings(), "detector")
        self.defaults = manifest.defaults
        self.imgsz = manifest.input.size if manifest.input else 640

    def decode_request(self, request) -> DetectRequest:
        conf, iou = float(self.defaults.get("conf", 0.25)), float(self.defaults.get("iou", 0.45))
        max_det, min_size = int(self.defaults.get("max_det", 300)), float(self.defaults.get("min_size", 0.0))
        tile, tile_above = str(self.defaults.get("tile", "off")), float(self.defaults.get("tile_above", TILE_ABOVE))
        image = read_upload(request["image"])  # tiling: the artifact's choice, as the service makes it
        return DetectRequest(image, conf, iou, max_det, self.imgsz, min_size, tile, tile_above)

    def encode_response(self, output: Any) -> dict[str, Any]:
        return {"detections": [{"box": d.box, "score": d.score, "label": d.label} for d in output]}


class ClassifyAPI(BatchedAPI):
    """The whole image as one face crop (``detect_faces=false``), as the load benchmark asks of both sides."""

    def setup(self, device: str) -> None:
        self.predictor, _ = load_predictor(Settings(), "classifier")

    def decode_request(self, request) -> Image.Image:
        return read_upload(request["image"])

    def encode_response(self, output: Any) -> dict[str, Any]:
        return {"label": output.label, "score": output.score, "probabilities": output.probabilities}


class StylizeAPI(BatchedAPI):
    """``plain``: the predictor encodes every style on every request, as a LitAPI written from LitServe's
    documentation would (DeepCanvas's predictor caches style statistics; the same-network table keeps it)."""

    def __init__(self, plain: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plain = plain

    def setup(self, device: str) -> None:
        settings = Settings()
        self.predictor, _ = load_predictor(settings, "style")
        if self.plain:
            self.predictor.statistics = StyleStatistics(capacity=0)
        name, ref = settings.model_refs["gallery"]
        self.gallery = build_gallery(*open_artifact_store(settings).fetch(name, ref), "cpu")

    def decode_request(self, request) -> StylizeRequest:
        style = self.gallery.image(request["style_name"])
        max_side = int(request.get("max_side", 512))
        return StylizeRequest(read_upload(request["content"]), (style,), (1.0,), 1.0, False, max_side)

    def encode_response(self, output: Any) -> Response:
        buffer = io.BytesIO()
        output.save(buffer, format="PNG", compress_level=1)
        return Response(buffer.getvalue(), media_type="image/png")


def create_server(max_batch_size: int, batch_timeout_s: float, plain: bool = False) -> ls.LitServer:
    batching = {"max_batch_size": max_batch_size, "batch_timeout": batch_timeout_s}
    apis = [
        DetectAPI(api_path="/detect", **batching),
        ClassifyAPI(api_path="/classify", **batching),
        StylizeAPI(plain=plain, api_path="/stylize", **batching),
    ]
    # /readyz: the path the benchmark polls on every side; LitServe answers it once every worker has set up.
    return ls.LitServer(apis, accelerator="cpu", workers_per_device=1, timeout=300, healthcheck_path="/readyz")


def main(
    port: Annotated[int, typer.Option(help="Port to bind on 127.0.0.1")] = 8000,
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most requests per LitServe batch")] = 8,
    batch_timeout_ms: Annotated[float, typer.Option(min=0, help="How long LitServe waits to fill a batch")] = 5.0,
    plain: Annotated[bool, typer.Option(help="Encode every style on every request (no statistics cache)")] = False,
) -> None:
    """Serve /detect, /classify and /stylize with LitServe."""
    server = create_server(max_batch_size, batch_timeout_ms / 1000, plain)
    server.run(host="127.0.0.1", port=port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    typer.run(main)
