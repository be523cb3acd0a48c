"""Request ids on the lines a model's thread writes: an operator can tie a model's error to its requests."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.manager import SlotPlan
from app.request_ids import RequestIdFilter, batch_request_id
from app.settings import Settings
from models.artifact import Manifest
from tests.support.app_client import wait_ready
from tests.support.fakes import FakeDetection, FakeDetector, fake_plans, make_fake_store
from tests.support.images import face_like_photo

HANG_S = 30  # bounds a hang only: what the test waits for happens in milliseconds
model_log = logging.getLogger("models.fake")


class LoggingDetector(FakeDetector):
    """Logs a line per batch from the slot's thread, and holds every batch until ``release`` is set (so that the
    requests sent meanwhile queue up and form one batch, whatever the machine's speed)."""

    def __init__(self, manifest: Manifest, entered: threading.Event, release: threading.Event) -> None:
        super().__init__(manifest)
        self.entered, self.release = entered, release

    def predict(self, batch: list[Any]) -> list[list[FakeDetection]]:
        self.entered.set()
        assert self.release.wait(HANG_S), "the test never released the batch"
        model_log.warning("a batch of %d", len(batch))
        return super().predict(batch)


def test_a_models_log_lines_carry_the_ids_of_the_requests_in_its_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The slot's thread ran without the request's context: its lines (a predictor's error, its warnings) named
    no request. A batch names each of its requests, once, joined by commas."""
    caplog.handler.addFilter(RequestIdFilter())  # as configure_logging's handler does
    entered, release = threading.Event(), threading.Event()
    detector = SlotPlan("detector", "detector", lambda f, m, d: LoggingDetector(m, entered, release))
    plans = [detector, *(plan for plan in fake_plans() if plan.slot != "detector")]
    app = create_app(Settings(store=make_fake_store(tmp_path / "store").as_uri(), cache_dir=tmp_path / "cache"), plans)
    photo = face_like_photo(320, 240)

    with TestClient(app) as client, ThreadPoolExecutor(3) as senders:

        def detect(request_id: str) -> httpx.Response:
            files = {"image": ("p.jpg", photo, "image/jpeg")}
            return client.post("/detect", files=files, headers={"X-Request-ID": request_id})

        wait_ready(client)
        answers = [senders.submit(detect, "alone-1")]
        assert entered.wait(HANG_S)  # the first batch holds the slot's thread: the next two queue together
        answers += [senders.submit(detect, request_id) for request_id in ("pair-1", "pair-2")]
        slot = app.state.manager.slots["detector"]
        deadline = time.monotonic() + HANG_S
        while len(slot._waiting) < 2:
            assert time.monotonic() < deadline, "the pair never queued"
            time.sleep(0.005)
        release.set()
        assert [answer.result(HANG_S).status_code for answer in answers] == [200, 200, 200]

    batches = [(record.getMessage(), getattr(record, "request_id", None)) for record in caplog.records]
    batches = [(message, request_id) for message, request_id in batches if message.startswith("a batch of")]
    assert len(batches) == 2, batches
    assert batches[0] == ("a batch of 1", "alone-1")
    message, request_id = batches[1]
    assert message == "a batch of 2" and sorted(str(request_id).split(",")) == ["pair-1", "pair-2"]


def test_a_batch_names_each_request_once_and_none_when_no_request_is_in_it() -> None:
    assert batch_request_id(["a", "b", "a", None]) == "a,b"
    assert batch_request_id([None, None]) is None and batch_request_id([]) is None
