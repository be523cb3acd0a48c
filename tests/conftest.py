"""Shared fixtures: offline ultralytics, ../shared, generated photos, a moto S3 server, the real service."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# ultralytics must never reach a hub, and needs a writable config dir: set before anything imports it.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
os.environ.setdefault("AWS_EMF_ENVIRONMENT", "local")
# Every in-process app of the suite would freeze the test process's heap (app.main.settle_heap) and keep the
# cycles of each test's models forever; tests/app/test_heap_freeze.py covers the freeze itself.
os.environ.setdefault("DEEPCANVAS_FREEZE_HEAP", "false")

from tests.support.images import face_like_photo
from tests.support.servers import LiveServer, MotoServer, start_moto_server

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DEEPCANVAS_SHARED", REPO.parent / "shared"))
EMBEDDED_STORE = REPO / "models" / "store"


def _store_snapshot() -> dict[str, int]:
    return {str(p.relative_to(EMBEDDED_STORE)): p.stat().st_size for p in EMBEDDED_STORE.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def embedded_store_stays_untouched() -> Iterator[None]:
    """No test may write into the repository's store (runtime documents, artifacts): they use copies."""
    before = _store_snapshot()
    yield
    assert _store_snapshot() == before, "a test changed models/store; give it a copy of the store instead"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared``; tests that use it skip cleanly where it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared is absent ({SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def embedded_store() -> Path:
    return EMBEDDED_STORE


@pytest.fixture(scope="session")
def sample_photo_bytes() -> bytes:
    """A real portrait from ../shared when present, else a generated face-like photo (JPEG bytes)."""
    portrait = SHARED / "data" / "style-transfer" / "content" / "brad_pitt.jpg"
    return portrait.read_bytes() if portrait.is_file() else face_like_photo()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real S3 endpoint (moto_server) on loopback for the whole session."""
    server = start_moto_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``deepcanvas serve`` on the embedded default store, started once, ready before the first test."""
    cache = tmp_path_factory.mktemp("cache")
    with LiveServer.ready(EMBEDDED_STORE.as_uri(), {"DEEPCANVAS_CACHE_DIR": str(cache)}) as server:
        yield server
