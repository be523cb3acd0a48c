"""With every model on the ONNX backend, the predictors and the whole service run without torch installed.

A subprocess hides torch, torchvision and ultralytics behind an import hook (as a slim image would lack
them), then builds the three ONNX predictors from exported artifacts, predicts, and serves them over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.models.conftest import ExportedStore

REPO = Path(__file__).resolve().parents[2]

WITHOUT_TORCH = textwrap.dedent(
    """
    import sys

    class HideTorch:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in ("torch", "torchvision", "ultralytics"):
                raise ImportError(f"No module named {name!r} (hidden by the test)", name=name)
            return None

    sys.meta_path.insert(0, HideTorch())
    """
)

PREDICT_AND_SERVE = textwrap.dedent(
    """
    import io, json, time
    from pathlib import Path
    from fastapi.testclient import TestClient
    from PIL import Image
    from app.main import create_app
    from app.settings import Settings
    from models.artifact import load_artifact
    from models.classifier.onnx_predictor import OnnxFaceClassifier
    from models.detector.onnx_predictor import OnnxFaceDetector
    from models.detector.types import DetectRequest
    from models.style.onnx_predictor import OnnxStyleTransfer
    from models.style.types import StylizeRequest

    store, cache, backend = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    runtime = Settings(onnx_threads=1).runtime(backend)
    image = Image.new("RGB", (96, 64), (180, 120, 90))
    def built(predictor, name):
        folder = store / name / "v0"
        return predictor.from_artifact(folder, load_artifact(folder), "cpu", runtime)
    [boxes] = built(OnnxFaceDetector, "face-detector").predict([DetectRequest(image, 0.0, 1.0, 3, 64)])
    [classified] = built(OnnxFaceClassifier, "face-gender").predict([image])
    [painted] = built(OnnxStyleTransfer, "adain").predict([StylizeRequest(image, (image,), (1.0,), 1.0, True, 64)])
    report = {
        "boxes": len(boxes),
        "probability_sum": sum(classified.probabilities.values()),
        "stylized": painted.size,
    }
    backends = {f"{role}_backend": backend for role in ("detector", "classifier", "style")}
    settings = Settings(store=store.as_uri(), cache_dir=cache, **backends)
    photo = io.BytesIO()
    image.save(photo, format="PNG")
    upload = {"image": ("p.png", photo.getvalue())}
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        painting, style = {"content": ("p.png", photo.getvalue())}, {"style_name": "brush-waves", "max_side": "64"}
        report["http"] = {
            "detect": client.post("/detect", files=upload, data={"imgsz": "64"}).status_code,
            "classify": client.post("/classify", files=upload, data={"detect_faces": "false"}).status_code,
            "stylize": client.post("/stylize", files=painting, data=style).status_code,
        }
        nst = client.post("/stylize", files=painting, data={"style_name": "brush-waves", "method": "nst"})
        report["nst"] = [nst.status_code, nst.json()["detail"]]
        report["styles_nst"] = client.get("/styles").json()["nst"]
    report["hidden_modules_loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "ultralytics"))
    print(json.dumps(report))
    """
)


def run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH + code, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_the_import_hook_really_hides_torch() -> None:
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "hidden by the test" in result.stderr


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_onnx_predictors_and_the_service_run_without_torch(
    exported_store: ExportedStore, tmp_path: Path, backend: str
) -> None:
    result = run_without_torch(PREDICT_AND_SERVE, str(exported_store.root), str(tmp_path / "cache"), backend)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["boxes"] == 3 and abs(report["probability_sum"] - 1) < 1e-6 and report["stylized"] == [64, 43]
    assert report["http"] == {"detect": 200, "classify": 200, "stylize": 200}
    assert report["nst"][0] == 422 and "needs torch" in report["nst"][1]
    assert report["styles_nst"]["available"] is False and report["styles_nst"]["reason"] == report["nst"][1]
    assert report["hidden_modules_loaded"] == []
