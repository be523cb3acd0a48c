"""The real app in-process, on a fake store and fake predictors: for tests of the HTTP layer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support.fakes import fake_plans, make_fake_store


def fake_app_client(
    tmp_path: Path, delay: float = 0.0, classifier_input: int | None = None, **overrides: object
) -> TestClient:
    """A client of ``create_app`` on a fake store under ``tmp_path`` (``make_fake_store``'s ``classifier_input``);
    ``overrides`` are settings."""
    store = make_fake_store(tmp_path / "store", classifier_input=classifier_input)
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", **overrides)  # type: ignore[arg-type]
    return TestClient(create_app(settings, fake_plans(delay)))


@contextmanager
def ready_admin_client(store: Path, tmp_path: Path, token: str) -> Iterator[TestClient]:
    """A ready client of ``create_app`` on ``store`` (fake predictors) with the admin token ``token``."""
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=token)  # type: ignore[arg-type]
    with TestClient(create_app(settings, fake_plans())) as client:
        yield wait_ready(client)


def wait_ready(client: TestClient, timeout: float = 60) -> TestClient:
    """``client`` once ``/readyz`` answers 200 (every model loaded); ``timeout`` only bounds a hang (fake models load
    in well under a second, a loaded machine may take several)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.02)
    return client
