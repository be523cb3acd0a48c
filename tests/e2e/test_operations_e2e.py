"""Operations with real server processes: graceful SIGTERM, and replicas converging through one S3 store."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.store import ArtifactStore, S3ObjectStore
from app.store.objects import make_s3_client
from tests.support.fakes import copy_as_version
from tests.support.images import face_like_photo
from tests.support.servers import HTTP_TIMEOUT, LiveServer, MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.s3]
TOKEN = "e2e-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = face_like_photo(200, 160)
POLL_S = 0.5  # the replicas' poll of the store: a change arrives far sooner than at the default 10 s
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_store(moto_server: MotoServer, embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The starter artifacts, plus a second classifier version, in a fresh bucket of the moto server."""
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    moto_server.client().create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in S3_ENV.items():
            patch.setenv(key, value)
        objects = S3ObjectStore(bucket, "models", make_s3_client(moto_server.url, "us-east-1", 10))
        store = ArtifactStore(objects, tmp_path_factory.mktemp("push-cache"))
        store.push_store(embedded_store)
        classifier = next((embedded_store / "face-gender").glob("v*"))
        store.push(copy_as_version(classifier, tmp_path_factory.mktemp("v") / "x", "next"))
    return f"s3://{bucket}/models"


def _replica(s3_store: str, moto: MotoServer, tmp: Path) -> LiveServer:
    env = S3_ENV | {
        "DEEPCANVAS_S3_ENDPOINT_URL": moto.url,
        "DEEPCANVAS_ADMIN_TOKEN": TOKEN,
        "DEEPCANVAS_PARAMS_POLL_S": str(POLL_S),
        "DEEPCANVAS_CACHE_DIR": str(tmp),
    }
    return LiveServer.start(store=s3_store, env=env)


@pytest.fixture(scope="module")
def replicas(
    s3_store: str, moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    first = _replica(s3_store, moto_server, tmp_path_factory.mktemp("cache-a"))
    second = _replica(s3_store, moto_server, tmp_path_factory.mktemp("cache-b"))
    try:
        first.wait_ready()
        second.wait_ready()
        yield first, second
    finally:
        first.stop()
        second.stop()


def _eventually(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_a_parameter_change_reaches_the_other_replica(replicas: tuple[LiveServer, LiveServer]) -> None:
    """Each change reaches the second replica at its next poll of the store. The first change lines the test up
    with that poll; each later one is made just after the poll that applied the one before, so it waits a whole
    interval: under a second at POLL_S, about 10 s for a replica that ignored DEEPCANVAS_PARAMS_POLL_S (the
    default). The quicker of two such rounds must be under 5 s: a loaded machine's slow round does not fail it,
    a 10 s poll cannot pass (it would need both rounds seen 5 s late)."""
    first, second = replicas
    etag = httpx.get(f"{first.url}/admin/params", headers=AUTH, timeout=HTTP_TIMEOUT).headers["etag"]
    rounds: list[float] = []
    for max_det in (7, 8, 9):
        changed = httpx.patch(
            f"{first.url}/admin/params",
            headers=AUTH | {"If-Match": etag},
            json={"detector_max_det": max_det},
            timeout=HTTP_TIMEOUT,
        )
        assert changed.status_code == 200, changed.text
        etag = changed.headers["etag"]
        started = time.monotonic()
        metric = f"deepcanvas_params_version {float(changed.json()['version'])}"
        _eventually(lambda metric=metric: metric in httpx.get(f"{second.url}/metrics", timeout=HTTP_TIMEOUT).text)
        rounds.append(time.monotonic() - started)
    assert min(rounds[1:]) < 5, rounds  # the first round's wait depends on where the poll was: not timed


def test_switching_versions_under_load_fails_no_request(replicas: tuple[LiveServer, LiveServer]) -> None:
    """Requests run all through the switch; the test waits for answers before and after it (counted, not timed:
    on a loaded machine a request may take longer than a fixed pause)."""
    first, second = replicas
    seen: list[tuple[int, str | None, float]] = []  # status, version, when the request was sent
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post(
                    f"{first.url}/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"}
                )
                seen.append((response.status_code, response.json().get("model", {}).get("version"), sent))

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        _eventually(lambda: len(seen) >= 4, 60)
        switched = httpx.post(
            f"{first.url}/admin/models/face-gender/activate", headers=AUTH, json={"version": "next"}, timeout=120
        )
        switched_at = time.monotonic()
        _eventually(lambda: sum(sent > switched_at for _, _, sent in seen) >= 4, 60)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert switched.status_code == 200, switched.text
    assert [s for s, _, _ in seen if s != 200] == []
    assert seen[0][1] != "next"
    assert {version for _, version, sent in seen if sent > switched_at} == {"next"}  # every later request
    _eventually(
        lambda: httpx.get(f"{second.url}/readyz", timeout=30).json()["models"]["classifier"]["version"] == "next"
    )


def test_sigterm_drains_then_exits(embedded_store: Path, tmp_path: Path) -> None:
    server = LiveServer.start(
        # an NST request that runs for its whole time budget, so it is still running when SIGTERM arrives
        store=embedded_store.as_uri(),
        env={
            "DEEPCANVAS_CACHE_DIR": str(tmp_path),
            "DEEPCANVAS_NST_ITERATIONS": "2000",
            "DEEPCANVAS_NST_MAX_SECONDS": "6",
        },
    )
    server.wait_ready()
    style = httpx.get(f"{server.url}/styles", timeout=30).json()["styles"][0]["name"]
    result: dict[str, httpx.Response] = {}

    def slow_request() -> None:
        result["nst"] = httpx.post(
            f"{server.url}/stylize",
            files={"content": ("p.jpg", PHOTO)},
            data={"style_name": style, "method": "nst", "max_side": "256"},
            timeout=120,
        )

    worker = threading.Thread(target=slow_request)
    worker.start()
    server.wait_in_flight()  # the painting runs (for 6 s) when SIGTERM comes
    server.process.send_signal(signal.SIGTERM)
    _eventually(lambda: httpx.get(f"{server.url}/readyz", timeout=30).status_code == 503)
    refused = httpx.post(f"{server.url}/detect", files={"image": ("p.jpg", PHOTO)}, timeout=30)
    assert refused.status_code == 503 and "shutting down" in refused.json()["detail"]
    worker.join()
    assert result["nst"].status_code == 200  # the in-flight request finished
    # uvicorn re-raises the captured SIGTERM once shut down, as a process killed by it would report
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()


def test_sigterm_exits_within_the_grace_period_when_a_request_outlives_it(embedded_store: Path, tmp_path: Path) -> None:
    """The drain waits the grace for requests in flight; uvicorn then waited the grace again (2 x grace + 1 s in
    all, past ECS's 30 s stop timeout at the default 20 s grace).

    A grace of 5 s leaves the exit 5 s for what is left after it (uvicorn's last second, NST's current step,
    the process's end: seconds on a loaded machine) and still catches a second grace (10 s and more)."""
    grace = 5
    env = {"DEEPCANVAS_CACHE_DIR": str(tmp_path), "DEEPCANVAS_NST_ITERATIONS": "2000"}
    env |= {"DEEPCANVAS_NST_MAX_SECONDS": "30", "DEEPCANVAS_GRACE_PERIOD_S": str(grace)}
    server = LiveServer.start(store=embedded_store.as_uri(), env=env)
    server.wait_ready()
    style = httpx.get(f"{server.url}/styles", timeout=30).json()["styles"][0]["name"]
    data = {"style_name": style, "method": "nst", "max_side": "256", "max_seconds": "30"}

    def painting() -> None:
        with contextlib.suppress(httpx.HTTPError):  # cut off at the end of the grace
            httpx.post(f"{server.url}/stylize", files={"content": ("p.jpg", PHOTO)}, data=data, timeout=60)

    worker = threading.Thread(target=painting, daemon=True)
    worker.start()
    server.wait_in_flight()  # the painting (30 s) runs when SIGTERM comes: the drain waits the whole grace
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=60)
    assert time.monotonic() - sent < 2 * grace  # the grace and what is left, not the grace twice
