"""Identity requests with several photos: decoded and detected together, errors named in the photos' order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.manager import SlotPlan
from app.services import in_order
from app.settings import Settings
from tests.support.app_client import wait_ready
from tests.support.fakes import make_fake_store
from tests.support.identity_fakes import FakeBlockDetector, add_fake_embedder, identity_plans, people_photo

TOKEN = "s3cret-token-0123456789abcdef"
ADA, BOB, NOBODY = (200, 30, 30), (30, 200, 30), (0, 0, 0)


class BatchRecordingDetector(FakeBlockDetector):
    batches: list[int] = []  # noqa: RUF012 (shared by the slot's instances on purpose)

    def predict(self, batch: list[Any]) -> list[Any]:
        BatchRecordingDetector.batches.append(len(batch))
        return super().predict(batch)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = make_fake_store(tmp_path / "store")
    add_fake_embedder(store)
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", admin_token=TOKEN)  # type: ignore[call-arg]
    plans = [p for p in identity_plans() if p.slot != "detector"]
    plans.append(SlotPlan("detector", "detector", lambda f, m, d: BatchRecordingDetector(m)))
    BatchRecordingDetector.batches = []
    with TestClient(create_app(settings, plans)) as client:
        yield wait_ready(client)


def test_verify_detects_both_photos_in_one_batch(client: TestClient) -> None:
    BatchRecordingDetector.batches.clear()
    files = {"image_a": ("a.png", people_photo(ADA)), "image_b": ("b.png", people_photo(BOB))}
    response = client.post("/verify", files=files)
    assert response.status_code == 200, response.text
    assert BatchRecordingDetector.batches == [2]


def test_enrolment_detects_its_photos_together_and_names_the_first_bad_one(client: TestClient) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    BatchRecordingDetector.batches.clear()
    photos = [("image", (f"p{i}.png", people_photo(ADA), "image/png")) for i in range(3)]
    assert client.post("/identities", data={"name": "Ada"}, files=photos, headers=admin).status_code == 201
    assert BatchRecordingDetector.batches == [3]
    bad = [
        ("image", ("good.png", people_photo(ADA), "image/png")),
        ("image", ("empty.png", people_photo(NOBODY), "image/png")),
        ("image", ("two.png", people_photo(ADA, BOB), "image/png")),
    ]
    response = client.post("/identities", data={"name": "Ada"}, files=bad, headers=admin)
    assert response.status_code == 422 and response.json()["detail"].startswith("image 'empty.png': no face found")


def test_in_order_raises_the_first_failure_in_argument_order_after_every_step_ended() -> None:
    ended: list[str] = []

    async def step(name: str, delay: float, fails: bool) -> str:
        await asyncio.sleep(delay)
        ended.append(name)
        if fails:
            raise ValueError(name)
        return name

    assert asyncio.run(in_order(step("a", 0.02, False), step("b", 0.0, False))) == ["a", "b"]
    ended.clear()
    with pytest.raises(ValueError, match=r"^a$"):  # "b" failed first in time
        asyncio.run(in_order(step("a", 0.03, True), step("b", 0.0, True), step("c", 0.01, False)))
    assert sorted(ended) == ["a", "b", "c"]
