"""``deepcanvas bench``: HTTP latency next to the same predictor in-process, on this machine.

Starts ``deepcanvas serve`` as a subprocess (start-up time to ready, resident memory), sends each
endpoint the same image N times, then builds the same predictors in this process from the same
store and times ``predict`` on the same decoded image. Prints a table and JSON with the ratios.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image
from rich.console import Console
from rich.table import Table

from app.imaging import ImageLimits, decode_image, load_rgb, open_checked, reduce_by
from app.loadbench import free_port, percentile, replay, request_for, settle, spawn, stop
from app.settings import Settings


@dataclass
class Timing:
    endpoint: str
    http_median_ms: float
    http_p95_ms: float
    inprocess_median_ms: float
    inprocess_p95_ms: float
    raw_median_ms: float  # through HTTP from a raw keep-alive client: the server's cost without httpx's
    server_ms: dict[str, float]  # medians of the responses' Server-Timing steps (decode, queue, infer, total)
    from_bytes_median_ms: float  # in-process from the upload's bytes: decoded as the route decodes, then predict

    @property
    def ratio(self) -> float:
        return self.http_median_ms / self.inprocess_median_ms

    @property
    def raw_ratio(self) -> float:
        return self.raw_median_ms / self.inprocess_median_ms

    @property
    def bytes_ratio(self) -> float:
        """The raw client's HTTP time over the same work in-process from the same bytes (decode included)."""
        return self.raw_median_ms / self.from_bytes_median_ms


def time_calls(call: Callable[[], Any], repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def start_server(store: str, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """The service as users run it; returns the process and seconds from spawn to /readyz 200."""
    deepcanvas = str(Path(sys.executable).parent / "deepcanvas")
    started = time.perf_counter()
    process = spawn([deepcanvas, "serve", "--host", "127.0.0.1", "--port", str(port), "--store", store], port, {}, 0.05)
    return process, time.perf_counter() - started


def server_steps(header: str) -> dict[str, float]:
    """A ``Server-Timing`` value as ms per step name (steps of one name summed: two models' ``infer``)."""
    steps: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, *params = part.split(";")
        fields = dict(p.strip().split("=", 1) for p in params if "=" in p)
        if "dur" in fields:
            steps[name.strip()] = steps.get(name.strip(), 0.0) + float(fields["dur"])
    return steps


def median_steps(headers: list[str], client_ms: list[float] | None = None) -> dict[str, float]:
    """The median of each step over the responses, and ``framework``: total less every other step.

    ``client_ms``, the same calls' times seen by their client (in order), adds ``outside``: each call's client
    time less its server total (the socket, uvicorn's parsing and the client itself), paired call by call.
    """
    parsed = [server_steps(h) for h in headers]
    assert client_ms is None or len(client_ms) == len(parsed), "one client time per response"
    for index, steps in enumerate(parsed):
        if "total" in steps:
            steps["framework"] = steps["total"] - sum(v for k, v in steps.items() if k != "total")
            if client_ms is not None:
                steps["outside"] = client_ms[index] - steps["total"]
    names = sorted({name for steps in parsed for name in steps})
    return {name: round(statistics.median(s.get(name, 0.0) for s in parsed), 3) for name in names}


def http_calls(
    base: str, photo: bytes, style: str, max_side: int, timings: dict[str, list[str]] | None = None
) -> dict[str, Callable[[], Any]]:
    """One call per endpoint; each response's ``Server-Timing`` is appended to ``timings[path]`` when given."""
    client = httpx.Client(base_url=base, timeout=120)

    def post(path: str, files: dict[str, Any], data: dict[str, Any]) -> Callable[[], Any]:
        def call() -> None:
            response = client.post(path, files=files, data=data)
            response.raise_for_status()
            if timings is not None:
                timings.setdefault(path, []).append(response.headers.get("server-timing", ""))

        return call

    return {
        "/detect": post("/detect", {"image": ("photo.jpg", photo)}, {}),
        "/classify": post("/classify", {"image": ("photo.jpg", photo)}, {"detect_faces": "false"}),
        "/stylize": post("/stylize", {"content": ("photo.jpg", photo)}, {"style_name": style, "max_side": max_side}),
    }


@dataclass
class InProcess:
    """The service's predictors in this process: one call per endpoint on a decoded image."""

    calls: dict[str, Callable[[Image.Image], Any]]
    style_name: str
    classify_side: int | None  # how far /classify's route reduces a JPEG while decoding it
    detect_reduction: Callable[[int, int], int]  # how many times smaller /detect's route decodes a JPEG

    def on(self, image: Image.Image) -> dict[str, Callable[[], Any]]:
        return {endpoint: functools.partial(call, image) for endpoint, call in self.calls.items()}


def inprocess_calls(settings: Settings, image: Image.Image, max_side: int) -> InProcess:
    """The same predictors, built from the same store, called directly on a decoded image."""
    from app.main import open_artifact_store
    from app.model_plans import default_plans
    from app.services import classifier_decode_side, detector_side
    from models.detector.tiling import lossless_reduction
    from models.detector.types import TILE_ABOVE, DetectRequest
    from models.style.types import StylizeRequest

    store = open_artifact_store(settings)
    builders = {plan.slot: plan.build for plan in default_plans(settings)}  # the backends the service uses

    def build(role: str) -> Any:
        name, ref = settings.model_refs[role]  # type: ignore[index]
        folder, manifest = store.fetch(name, ref)
        return builders[role](folder, manifest, settings.device)

    detector, classifier, style, gallery = build("detector"), build("classifier"), build("style"), build("gallery")
    style_name = gallery.names()[0]
    size = detector.manifest.input.size if detector.manifest.input else 640
    defaults = detector.manifest.defaults  # the service's own defaults: tiling included when they turn it on
    detect = DetectRequest(
        image=image,
        conf=float(defaults.get("conf", 0.25)),
        iou=float(defaults.get("iou", 0.45)),
        max_det=int(defaults.get("max_det", 300)),
        imgsz=size,
        min_size=float(defaults.get("min_size", 0.0)),
        tile=str(defaults.get("tile", "off")),
        tile_above=float(defaults.get("tile_above", TILE_ABOVE)),
    )
    stylize = StylizeRequest(image, (gallery.image(style_name),), (1.0,), 1.0, False, max_side)
    calls: dict[str, Callable[[Image.Image], Any]] = {
        "/detect": lambda photo: detector.predict([dataclasses.replace(detect, image=photo)]),
        "/classify": lambda photo: classifier.predict([photo]),
        "/stylize": lambda photo: style.predict([dataclasses.replace(stylize, content=photo)]),
    }
    side = detector_side(detector, size)

    def detect_reduction(width: int, height: int) -> int:
        return lossless_reduction(width, height, side, detect.tile, detect.tile_above)

    return InProcess(calls, style_name, classifier_decode_side(classifier.manifest), detect_reduction)


def from_bytes(local: InProcess, photo: bytes, settings: Settings, max_side: int) -> dict[str, Callable[[], Any]]:
    """Each in-process call on the upload's bytes, decoded as its route decodes them.

    ``/classify`` reduces a JPEG to twice the classifier's input on the shorter side, ``/stylize`` to the
    painting's ``max_side`` on the longer side, ``/detect`` by the DCT scale at which its views lose nothing.
    """
    limits = ImageLimits(settings.max_pixels, settings.min_side)
    bounds = {"/classify": (local.classify_side, None), "/stylize": (None, max_side)}

    def decoded_then(call: Callable[[Image.Image], Any], reduce_to: int | None, long: int | None) -> Callable[[], Any]:
        return lambda: call(decode_image(photo, limits, "image", reduce_to, long))

    def reduced_then(call: Callable[[Image.Image], Any]) -> Callable[[], Any]:
        def run() -> Any:
            image = open_checked(photo, limits, "image")
            reduce_by(image, local.detect_reduction(image.width, image.height))
            return call(load_rgb(image, "image", photo))

        return run

    calls = {
        endpoint: decoded_then(call, *bounds.get(endpoint, (None, None))) for endpoint, call in local.calls.items()
    }
    return calls | {"/detect": reduced_then(local.calls["/detect"])}


BLOCKS = 5  # blocks per way of timing an endpoint; the machine's speed drifts 10-15 % within a minute here


def block_sizes(repeats: int, blocks: int) -> list[int]:
    """``repeats`` calls split into at most ``blocks`` near-equal blocks (none empty)."""
    sizes = [repeats // blocks + (index < repeats % blocks) for index in range(blocks)]
    return [size for size in sizes if size]


def run_bench(photo: bytes, repeats: int, max_side: int, settings: Settings) -> dict[str, Any]:
    """Each endpoint through HTTP (httpx and a raw client) and in-process (decoded, and from the upload's bytes).

    The four are timed in alternating blocks (``BLOCKS``), so that their ratios compare calls made under the same
    machine state: timed one after another, an in-process baseline drifted by up to 15 % from its HTTP side.
    """
    image = decode_image(photo, ImageLimits(settings.max_pixels, settings.min_side))
    local = inprocess_calls(settings, image, max_side)
    style_name, on_image = local.style_name, local.on(image)
    on_bytes = from_bytes(local, photo, settings, max_side)
    port = free_port()
    process, startup_s = start_server(settings.store, port)
    try:
        rss_mb = psutil.Process(process.pid).memory_info().rss / 2**20
        settled_s = settle(process.pid)
        headers: dict[str, list[str]] = {}
        remote = http_calls(f"http://127.0.0.1:{port}", photo, style_name, max_side, headers)
        timings = []
        for endpoint, call in remote.items():
            request = request_for(endpoint, photo, style_name, max_side)
            for warm in (call, on_image[endpoint], on_bytes[endpoint]):
                time_calls(warm, 0)
            first = len(headers[endpoint])
            http: list[float] = []
            direct: list[float] = []
            decoding: list[float] = []
            raw: list[float] = []
            for size in block_sizes(repeats, BLOCKS):  # the four ways alternate: a drift moves them alike
                http += time_calls(call, size, warmup=0)
                direct += time_calls(on_image[endpoint], size, warmup=0)
                decoding += time_calls(on_bytes[endpoint], size, warmup=0)
                raw += asyncio.run(replay(f"http://127.0.0.1:{port}", endpoint, request, size, warmup=1))
            server = median_steps(headers[endpoint][first:], http)  # the timed calls, not the warm-up
            timings.append(
                Timing(
                    endpoint,
                    statistics.median(http),
                    percentile(http, 0.95),
                    statistics.median(direct),
                    percentile(direct, 0.95),
                    statistics.median(raw),
                    server,
                    statistics.median(decoding),
                )
            )
        rss_after_mb = psutil.Process(process.pid).memory_info().rss / 2**20
    finally:
        stop(process)
    return {
        "image": {"width": image.width, "height": image.height},
        "repeats": repeats,
        "startup_to_ready_s": round(startup_s, 2),
        "settled_after_ready_s": round(settled_s, 2),  # deferred warm-ups done: the timing starts here
        "server_rss_mb_ready": round(rss_mb, 1),
        "server_rss_mb_after": round(rss_after_mb, 1),
        "endpoints": [
            asdict(t)
            | {"ratio": round(t.ratio, 3), "raw_ratio": round(t.raw_ratio, 3), "bytes_ratio": round(t.bytes_ratio, 3)}
            for t in timings
        ],
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(
        "endpoint",
        "HTTP p50 ms",
        "HTTP p95 ms",
        "in-process p50 ms",
        "in-process p95 ms",
        "ratio p50",
        "raw-client HTTP p50 ms",
        "raw ratio",
        "in-process from bytes p50 ms",
        "raw / from bytes",
    )
    for row in report["endpoints"]:
        table.add_row(
            row["endpoint"],
            f"{row['http_median_ms']:.1f}",
            f"{row['http_p95_ms']:.1f}",
            f"{row['inprocess_median_ms']:.1f}",
            f"{row['inprocess_p95_ms']:.1f}",
            f"{row['ratio']:.3f}",
            f"{row['raw_median_ms']:.1f}",
            f"{row['raw_ratio']:.3f}",
            f"{row['from_bytes_median_ms']:.1f}",
            f"{row['bytes_ratio']:.3f}",
        )
    console.print(table)
    names = ("total", "decode", "queue", "infer", "encode", "framework")
    steps = Table("endpoint", "server total", *names[1:], "outside the server (httpx)")
    for row in report["endpoints"]:
        server = row["server_ms"]
        steps.add_row(row["endpoint"], *(f"{server.get(name, 0.0):.2f}" for name in (*names, "outside")))
    console.print("Server-Timing medians (ms) of the HTTP calls above:")
    console.print(steps)
    console.print(
        f"start-up to ready: {report['startup_to_ready_s']} s (then {report['settled_after_ready_s']} s until the "
        "server's deferred warm-ups were done and timing began); resident memory: "
        f"{report['server_rss_mb_ready']} MB ready, {report['server_rss_mb_after']} MB after the run"
    )


def load_photo(path: Path | None) -> bytes:
    """The given photo, else ../shared's portrait when present, else a generated 640×480 scene."""
    shared = Path(__file__).resolve().parent.parent.parent / "shared/data/style-transfer/content/brad_pitt.jpg"
    if path is None and shared.is_file():
        path = shared
    if path is not None:
        return path.read_bytes()
    from PIL import ImageDraw

    image = Image.new("RGB", (640, 480), (70, 110, 150))
    draw = ImageDraw.Draw(image)
    for i in range(0, 640, 16):
        draw.line([(i, 0), (640 - i, 480)], fill=(i % 255, 120, 200 - i % 200), width=3)
    draw.ellipse([250, 120, 390, 310], fill=(224, 180, 150))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
