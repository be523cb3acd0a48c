"""GPU benchmark, one command on a lent GPU machine: the service's throughput next to the raw networks'.

``python -m bench.gpu --out $OUT`` writes the starter artifacts into a temporary store (throughput does
not depend on the weights' values), then, on the GPU, measures in one run:

- raw networks: YOLOv5s at 640 and the AdaIN encoder + decoder at 512×512, batched forward passes in a
  closed loop (images per second, the ceiling);
- the service: ``deepcanvas serve`` with ``DEEPCANVAS_DEVICE=cuda`` (``serve`` has no ``--device``) answering
  /detect (640) and /stylize (512×512) to concurrent HTTP clients (requests per second), micro-batching included.

It prints a table and writes ``gpu-bench.json`` and ``gpu-bench.md`` into ``--out``. Target: the
service reaches at least 70% of the raw network's throughput. ``--device cpu`` runs the same measurements
on the CPU, so the script is tested where no GPU is (the numbers then say nothing about a GPU).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from PIL import Image


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def raw_throughput(forward: Any, batch: Any, seconds: float) -> float:
    """Images per second of ``forward(batch)`` in a closed loop, synchronised with the device."""
    import torch

    with torch.inference_mode():
        for _ in range(3):
            forward(batch)
        synchronize(batch.device)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            forward(batch)
            done += batch.shape[0]
        synchronize(batch.device)
    return done / (time.perf_counter() - started)


def raw_networks(store: Path, batch: int, seconds: float, device_name: str = "cuda") -> dict[str, float]:
    import torch

    from models.artifact import load_artifact
    from models.detector.predictor import FaceDetector
    from models.detector.rfb_predictor import ships_as_onnx
    from models.style.predictor import StyleTransfer

    device = torch.device(device_name)
    # the raw torch network of a YOLO version (an imported ONNX-only detector has none to time on the GPU here)
    yolo = [f for f in sorted((store / "face-detector").glob("v*")) if not ships_as_onnx(load_artifact(f))]
    detector_folder = yolo[0]
    style_folder = next((store / "adain").glob("v*"))
    detector = FaceDetector.from_artifact(detector_folder, load_artifact(detector_folder), device)
    style = StyleTransfer.from_artifact(style_folder, load_artifact(style_folder), device)
    images = torch.rand(batch, 3, 640, 640, device=device)  # (B, 3, 640, 640)
    contents = torch.rand(batch, 3, 512, 512, device=device)  # (B, 3, 512, 512)
    network: Any = detector.network
    encoder: Any = style.encoder
    decoder: Any = style.decoder
    return {
        "/detect": raw_throughput(network, images, seconds),
        "/stylize": raw_throughput(lambda x: decoder(encoder(x)), contents, seconds),
    }


def service_throughput(store: Path, clients: int, seconds: float, device: str = "cuda") -> dict[str, float]:
    from app.bench import free_port
    from app.loadbench import drive, request_for, spawn

    port = free_port()
    args = [str(Path(sys.executable).parent / "deepcanvas"), "serve", "--port", str(port), "--store", store.as_uri()]
    env = {"DEEPCANVAS_DEVICE": device, "DEEPCANVAS_QUEUE_SIZE": str(4 * clients)}
    process = spawn(args, port, env)
    try:
        photos = {"/detect": jpeg(640, 640), "/stylize": jpeg(512, 512)}
        style = httpx.get(f"http://127.0.0.1:{port}/styles").json()["styles"][0]["name"]
        result = {}
        for endpoint, photo in photos.items():
            request = request_for(endpoint, photo, style, 512)
            asyncio.run(drive(f"http://127.0.0.1:{port}", endpoint, request, clients, 3))  # warm-up
            measured = asyncio.run(drive(f"http://127.0.0.1:{port}", endpoint, request, clients, seconds))
            result[endpoint] = measured.throughput_rps
        return result
    finally:
        process.terminate()
        process.wait(60)


def jpeg(width: int, height: int) -> bytes:
    image = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 0.8, 1.2), 64).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(
    out: Annotated[Path, typer.Option(help="Folder for gpu-bench.json and gpu-bench.md")] = Path("."),
    batch: Annotated[int, typer.Option(min=1, help="Raw networks' batch size")] = 8,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent HTTP clients")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds per measurement")] = 20,
    device: Annotated[str, typer.Option(help="cuda, cuda:N, or cpu (to check the script itself)")] = "cuda",
) -> None:
    """Service throughput versus raw network throughput for YOLOv5s at 640 and AdaIN at 512, on the GPU."""
    import torch

    from models.starter import write_untrained_store

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the GPU machine")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    store = Path(tempfile.mkdtemp(prefix="gpu-bench-store-"))
    write_untrained_store(store)
    raw = raw_networks(store, batch, seconds, device)
    served = service_throughput(store, clients, seconds, device)
    rows = [
        {
            "endpoint": e,
            "raw_images_per_s": round(raw[e], 3),
            "service_requests_per_s": round(served[e], 3),
            "service_share": round(served[e] / raw[e], 3),
        }
        for e in raw
    ]
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
    report = {"device": name, "batch": batch, "clients": clients, "rows": rows}
    table = ["| endpoint | raw network (img/s) | service (req/s) | service / raw |", "|---|---|---|---|"]
    table += [
        f"| {r['endpoint']} | {r['raw_images_per_s']} | {r['service_requests_per_s']} | {r['service_share']:.0%} |"
        for r in rows
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-bench.json").write_text(json.dumps(report, indent=2))
    (out / "gpu-bench.md").write_text(f"Device: {report['device']}\n\n" + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    typer.run(main)
