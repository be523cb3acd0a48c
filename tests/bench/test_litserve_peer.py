"""The LitServe peer of ``deepcanvas bench --peer litserve``, as a real server on an exported store."""

from __future__ import annotations

import asyncio
import io
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from app.bench import free_port
from app.loadbench import LoadResult, compare, drive, request_for, server_args, spawn, stop
from app.settings import Settings
from bench.litserve_app import load_predictor
from models.artifact import load_artifact
from models.detector.types import DetectRequest
from models.onnx_export import export_artifact

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BACKEND_ENV = {f"DEEPCANVAS_{role}_BACKEND": "openvino" for role in ("DETECTOR", "CLASSIFIER", "STYLE")}


@pytest.fixture(scope="module")
def exported_copy(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded store with every network exported to ONNX, as ``deepcanvas bench --backend`` makes it."""
    store = tmp_path_factory.mktemp("peer") / "store"
    shutil.copytree(embedded_store, store, ignore=shutil.ignore_patterns("_runtime"))
    for manifest in sorted(store.glob("*/*/manifest.json")):
        if load_artifact(manifest.parent).task != "style-gallery":
            export_artifact(manifest.parent)
    return store


@pytest.fixture(scope="module")
def peer(exported_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, psutil.Process]]:
    port = free_port()
    env = BACKEND_ENV | {
        "DEEPCANVAS_STORE": exported_copy.as_uri(),
        "DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
    }
    args = server_args("litserve", exported_copy.as_uri(), port, ("--max-batch-size", "4", "--batch-timeout-ms", "5"))
    process = spawn(args, port, env)
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        stop(process)


def test_the_peer_detects_what_the_same_predictor_detects_in_process(
    peer: tuple[str, psutil.Process], exported_copy: Path, shared_dir: Path, tmp_path: Path
) -> None:
    url, _ = peer
    # a portrait whose face the shipped detector finds at its defaults (brad_pitt, upscaled to 640 px, it misses)
    sample_photo_bytes = (shared_dir / "data" / "style-transfer" / "content" / "lenna.jpg").read_bytes()
    answer = httpx.post(f"{url}/detect", files={"image": ("p.jpg", sample_photo_bytes)}, timeout=60).json()
    settings = Settings(store=exported_copy.as_uri(), detector_backend="openvino", cache_dir=tmp_path)
    detector, manifest = load_predictor(settings, "detector")
    image = Image.open(io.BytesIO(sample_photo_bytes)).convert("RGB")
    defaults = manifest.defaults
    conf, iou = float(defaults.get("conf", 0.25)), float(defaults.get("iou", 0.45))
    min_size = float(defaults.get("min_size", 0.0))
    request = DetectRequest(image, conf, iou, int(defaults.get("max_det", 300)), manifest.input.size, min_size)
    [expected] = detector.predict([request])
    assert len(answer["detections"]) == len(expected) > 0
    for found, wanted in zip(answer["detections"], expected, strict=True):
        assert found["box"] == pytest.approx(list(wanted.box), abs=1e-3)


def test_the_peer_answers_every_endpoint_under_concurrent_load(
    peer: tuple[str, psutil.Process], sample_photo_bytes: bytes
) -> None:
    url, _ = peer
    style = "mosaic-tiles"
    for endpoint in ("/detect", "/classify", "/stylize"):
        request = request_for(endpoint, sample_photo_bytes, style, 64)
        result = asyncio.run(drive(url, endpoint, request, clients=6, seconds=1.5))
        assert result.errors == 0 and result.requests >= 6, (endpoint, result)


def test_stopping_the_peer_ends_its_workers_and_frees_the_port(exported_copy: Path, tmp_path: Path) -> None:
    port = free_port()
    env = BACKEND_ENV | {"DEEPCANVAS_STORE": exported_copy.as_uri(), "DEEPCANVAS_CACHE_DIR": str(tmp_path)}
    process = spawn(server_args("litserve", exported_copy.as_uri(), port), port, env)
    workers = psutil.Process(process.pid).children(recursive=True)
    assert workers, "LitServe runs its inference in worker processes"
    stop(process)
    assert not [w for w in workers if w.is_running()], "stop() returns once every worker has ended"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing listens there any more


def test_ratios_compare_deepcanvas_with_the_chosen_peer() -> None:
    results = [
        LoadResult("litserve", "/detect", 16, 100, 0, 50.0, 10.0, 20.0, 40.0),
        LoadResult("deepcanvas", "/detect", 16, 200, 0, 100.0, 8.0, 15.0, 20.0),
    ]
    [row] = compare(results, "litserve")
    assert (row["throughput_ratio"], row["p99_ratio"], row["p99_over_p50"]) == (2.0, 0.5, 2.5)
    assert compare(results, "baseline") == []


def test_as_shipped_the_peer_serves_the_detectors_graphs_as_their_authors_publish_them(tmp_path: Path) -> None:
    """The float files and the authors' whole graphs at their one input, as the int8 files stay ours."""
    from app.loadbench import SHIPPED_DEFAULTS, litserve_scenarios

    scenarios = litserve_scenarios("openvino")
    assert scenarios["as_shipped"]["litserve"]["DEEPCANVAS_DETECTOR_VIEWS"] == "false"
    assert SHIPPED_DEFAULTS["DEEPCANVAS_DETECTOR_VIEWS"] == "true"
    assert "DEEPCANVAS_DETECTOR_VIEWS" not in scenarios["same_network"]["litserve"]  # both sides alike there
    plain = Settings(detector_backend="openvino", detector_views=False, cache_dir=tmp_path)
    detector, manifest = load_predictor(plain, "detector")
    assert "views" in manifest.hyperparameters and len(detector.views) == 1 and detector.views[0].priors is None
    served, _ = load_predictor(Settings(detector_backend="openvino", cache_dir=tmp_path), "detector")
    assert len(served.views) == 3
