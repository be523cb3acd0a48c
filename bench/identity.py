"""``python -m bench.identity``: /identify latency (p50, p95) against 1k, 10k and 100k enrolled faces.

The store is a temporary copy of the embedded one with the stable detector exported to ONNX (the embedder
artifact ships its ONNX file). For each gallery size: a fresh SQLite database filled with synthetic unit
descriptors (inserted directly: the index's cost depends on the gallery's size, not on whose faces they are),
``deepcanvas serve`` on it with the detector and embedder on OpenVINO, then the same real query photo sent
N times through HTTP, one at a time. Also times the index search alone (the matrix product and each
identity's best face) in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import typer
from sqlalchemy import insert, update

from app.bench import free_port
from app.identities.database import migrate, open_engine
from app.identities.index import FaceIndex
from app.identities.repository import StoredFace
from app.identities.tables import FaceRow, IdentityRow, Revision
from app.loadbench import percentile
from app.settings import EMBEDDED_STORE

EMBEDDER = "face-embedder/v1"
DEFAULT_PHOTO = Path(__file__).resolve().parents[1].parent / "shared/data/lfw-funneled/images/Serena_Williams"


@dataclass(frozen=True)
class Result:
    gallery_size: int
    http_p50_ms: float
    http_p95_ms: float
    index_p50_ms: float
    index_load_s: float


def synthetic_descriptors(count: int, seed: int = 0, dim: int = 128) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)  # (N, D)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill_database(url: str, descriptors: np.ndarray, chunk: int = 5000) -> None:
    """One identity per face (the index's worst case), all at revision 1."""
    engine = open_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for start in range(0, len(descriptors), chunk):
            ids = [f"{i:032x}" for i in range(start, min(start + chunk, len(descriptors)))]
            connection.execute(
                insert(IdentityRow),
                [
                    {"id": i, "name": f"synthetic {i[-6:]}", "created_at": now, "updated_at": now, "revision": 1}
                    for i in ids
                ],
            )
            connection.execute(
                insert(FaceRow),
                [
                    {
                        "id": i,
                        "identity_id": i,
                        "embedder": EMBEDDER,
                        "descriptor": d.tobytes(),
                        "created_at": now,
                        "revision": 1,
                    }
                    for i, d in zip(ids, descriptors[start : start + len(ids)], strict=True)
                ],
            )
        connection.execute(update(Revision).where(Revision.id == 1).values(value=1))
    engine.dispose()


def time_index(descriptors: np.ndarray, repeats: int) -> float:
    faces = [StoredFace(f"{i:032x}", f"{i:032x}", "x", d) for i, d in enumerate(descriptors)]
    index = FaceIndex(EMBEDDER).with_changes(faces)
    query = synthetic_descriptors(1, seed=1)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        index.search(query, 5)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def openvino_store(work: Path) -> Path:
    """A copy of the embedded store whose stable detector has its ONNX files (the embedder ships its own)."""
    from models.onnx_export import export_artifact

    store = work / "store"
    shutil.copytree(EMBEDDED_STORE, store, ignore=shutil.ignore_patterns("_runtime"))
    version = json.loads((store / "face-detector" / "aliases.json").read_text())["stable"]
    export_artifact(store / "face-detector" / version)
    return store


def _serve(url: str, store: Path, cache: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        "DEEPCANVAS_STORE": store.as_uri(),
        "DEEPCANVAS_DATABASE_URL": url,
        "DEEPCANVAS_CACHE_DIR": str(cache),
        "DEEPCANVAS_DETECTOR_BACKEND": "openvino",
        "DEEPCANVAS_EMBEDDER_BACKEND": "openvino",
        "DEEPCANVAS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port)]
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_gallery(base: str, photo: bytes, size: int, timeout: float = 300) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            answer = httpx.post(f"{base}/identify", files={"image": photo}, timeout=60)
            if answer.status_code == 200 and answer.json()["gallery_size"] >= size:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{base} did not index {size} faces within {timeout} s")


def measure(size: int, photo: bytes, repeats: int, store: Path, work: Path) -> Result:
    url = f"sqlite:///{work / f'gallery-{size}.sqlite3'}"
    descriptors = synthetic_descriptors(size)
    fill_database(url, descriptors)
    port = free_port()
    server = _serve(url, store, work / "cache", port)
    base = f"http://127.0.0.1:{port}"
    try:
        load_s = _wait_for_gallery(base, photo, size)
        samples = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for i in range(repeats + 5):
                started = time.perf_counter()
                response = client.post("/identify", files={"image": photo})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text
                if i >= 5:
                    samples.append(elapsed)
    finally:
        server.terminate()
        server.wait(30)
    return Result(size, percentile(samples, 0.5), percentile(samples, 0.95), time_index(descriptors, 30), load_s)


def main(
    sizes: Annotated[list[int], typer.Option("--size", help="Gallery sizes (enrolled faces)")] = [1000, 10000, 100000],  # noqa: B006
    photo: Annotated[Path | None, typer.Option(help="The query photo (one face); default: an LFW photo")] = None,
    repeats: Annotated[int, typer.Option(min=5)] = 60,
) -> None:
    query = (photo or sorted(DEFAULT_PHOTO.glob("*.jpg"))[5]).read_bytes()
    work = Path(tempfile.mkdtemp(prefix="bench-identity-"))
    store = openvino_store(work)
    results = [measure(size, query, repeats, store, work) for size in sizes]
    for r in results:
        print(
            f"{r.gallery_size:>7} faces: /identify p50 {r.http_p50_ms:6.1f} ms, p95 {r.http_p95_ms:6.1f} ms; "
            f"index search alone p50 {r.index_p50_ms:6.2f} ms; first load {r.index_load_s:5.1f} s"
        )
    print(json.dumps([asdict(r) for r in results]))


if __name__ == "__main__":
    typer.run(main)
