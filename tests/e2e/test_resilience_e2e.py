"""The real server under schema fuzzing, sustained saturation and a missing or stalled model store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from app.store import ArtifactStore, S3ObjectStore
from app.store.objects import make_s3_client
from tests.support.images import face_like_photo
from tests.support.servers import HTTP_TIMEOUT, LiveServer, free_port, start_moto_server

pytestmark = pytest.mark.e2e
TOKEN = "fuzz-token-0123456789abcdef"
LOAD_SECONDS = float(os.environ.get("DEEPCANVAS_LOAD_SECONDS", "120"))
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def fuzzable_server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # The fuzzer holds the admin token: it may switch models and write runtime documents, so give it a copy.
    store = tmp_path_factory.mktemp("store") / "store"
    shutil.copytree(embedded_store, store)
    env = {
        "DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "DEEPCANVAS_ADMIN_TOKEN": TOKEN,
        "DEEPCANVAS_NST_ITERATIONS": "2",
        "DEEPCANVAS_NST_MAX_SIDE": "64",
        "DEEPCANVAS_QUEUE_SIZE": "4",
    }
    with LiveServer.ready(store.as_uri(), env) as server:
        yield server


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzable_server: LiveServer) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{fuzzable_server.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "-n",
            "10",
            "--seed",
            "1",
            "--request-timeout",
            "120",
            "--phases",
            "examples,coverage,fuzzing",
            "-H",
            f"Authorization: Bearer {TOKEN}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert httpx.get(f"{fuzzable_server.url}/readyz", timeout=HTTP_TIMEOUT).status_code == 200


def test_saturation_gives_only_successes_or_503_with_retry_after(fuzzable_server: LiveServer) -> None:
    photo = face_like_photo(320, 240)
    style = httpx.get(f"{fuzzable_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    calls = [
        ("/detect", {"image": ("p.jpg", photo)}, {}),
        ("/classify", {"image": ("p.jpg", photo)}, {}),
        ("/stylize", {"content": ("p.jpg", photo)}, {"style_name": style, "max_side": "256"}),
    ]
    process = psutil.Process(fuzzable_server.process.pid)
    outcomes: list[tuple[int, bool]] = []
    readiness: list[int] = []
    deadline = time.monotonic() + LOAD_SECONDS

    def client(index: int) -> None:
        with httpx.Client(base_url=fuzzable_server.url, timeout=120) as http:
            while time.monotonic() < deadline:
                path, files, data = calls[index % len(calls)]
                response = http.post(path, files=files, data=data)
                outcomes.append((response.status_code, "retry-after" in response.headers))

    rss: list[int] = []

    def watch() -> None:
        """Readiness every 2 s; resident memory once the allocator has seen full batches, and at the end."""
        steady = deadline - 0.75 * LOAD_SECONDS
        while time.monotonic() < deadline:
            readiness.append(httpx.get(f"{fuzzable_server.url}/readyz", timeout=30).status_code)
            if not rss and time.monotonic() >= steady:
                rss.append(process.memory_info().rss)
            time.sleep(2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    watcher.join()
    rss_before, rss_after = rss[0], process.memory_info().rss
    unexpected = [(status, retry) for status, retry in outcomes if status != 200 and not (status == 503 and retry)]
    assert unexpected == [], unexpected[:5]
    assert sum(status == 200 for status, _ in outcomes) > 0
    assert set(readiness) == {200}
    assert rss_after < rss_before * 1.10, (rss_before, rss_after)


def _seed(endpoint: str, bucket: str, embedded_store: Path, cache: Path) -> None:
    client = make_s3_client(endpoint, "us-east-1", 10)
    client.create_bucket(Bucket=bucket)
    ArtifactStore(S3ObjectStore(bucket, "models", client), cache).push_store(embedded_store)


@pytest.mark.s3
def test_a_store_down_at_start_up_is_retried_until_it_comes_back(
    embedded_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    port, bucket = free_port(), f"late-{uuid.uuid4().hex[:8]}"
    env = S3_ENV | {
        "DEEPCANVAS_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "DEEPCANVAS_STORE_RETRIES": "30",
        "DEEPCANVAS_STORE_TIMEOUT_S": "2",
        "DEEPCANVAS_CACHE_DIR": str(tmp_path / "cache"),
        "DEEPCANVAS_PARAMS_POLL_S": "2",  # failed roles are retried at each poll
    }
    server = LiveServer.start(store=f"s3://{bucket}/models", env=env)
    moto = None
    try:
        server.wait_for("/healthz", 60)
        time.sleep(3)
        assert httpx.get(f"{server.url}/readyz", timeout=HTTP_TIMEOUT).status_code == 503
        moto = start_moto_server(port)
        _seed(moto.url, bucket, embedded_store, tmp_path / "seed-cache")
        server.wait_ready(timeout=180)
    finally:
        server.stop()
        if moto:
            moto.stop()


def test_a_stalled_store_times_out_instead_of_hanging(embedded_store: Path, tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts connections, never answers
    port = silent.getsockname()[1]
    env = S3_ENV | {
        "DEEPCANVAS_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "DEEPCANVAS_STORE_RETRIES": "1",
        "DEEPCANVAS_STORE_TIMEOUT_S": "1",
        "DEEPCANVAS_CACHE_DIR": str(tmp_path / "cache"),
    }
    server = LiveServer.start(store="s3://stalled/models", env=env)
    try:
        server.wait_for("/healthz", 60)
        started = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200  # the loop never blocks
        deadline = time.monotonic() + 120
        while True:
            states = httpx.get(f"{server.url}/readyz", timeout=5).json()["models"]
            if all(s["state"] == "failed" for s in states.values()):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
        assert time.monotonic() - started < 120
        assert "timeout" in states["detector"]["detail"].lower() or "timed out" in states["detector"]["detail"].lower()
    finally:
        server.stop()
        silent.close()
