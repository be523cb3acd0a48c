"""Conditional writes: two replicas updating one stored document cannot both win from the same read.

Each store (a local folder, and a real S3 endpoint on loopback) runs the compare and the write as one
step. The races are forced: both writers read, wait for each other, then write.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.runtime import PARAMS_KEY, ParamsService, PreconditionFailed, read_document
from app.settings import Settings
from app.store import ArtifactStore, LocalObjectStore, S3ObjectStore
from app.store.objects import ObjectMissing, ObjectStore, WriteConflict, make_s3_client
from tests.support.fakes import DelegatingStore, make_fake_store
from tests.support.servers import MotoServer


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
        return
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = f"cas-{uuid.uuid4().hex[:8]}"
    moto.client().create_bucket(Bucket=bucket)
    yield S3ObjectStore(bucket, "models", make_s3_client(moto.url, "us-east-1", 5))


class MeetAfterRead(DelegatingStore):
    """Delegates to a store; its first ``read_tagged`` waits until the other writer has read too."""

    def __init__(self, inner: ObjectStore, barrier: threading.Barrier) -> None:
        super().__init__(inner)
        self.barrier, self.waited = barrier, False

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        try:
            return self.inner.read_tagged(key)
        finally:
            if not self.waited:
                self.waited = True
                self.barrier.wait(timeout=60)  # bounds a hang: the other writer's read of moto


@pytest.mark.s3
def test_a_write_lands_only_over_the_version_it_read(objects: ObjectStore) -> None:
    objects.write_if("_runtime/doc.json", b"one", None)  # create-only: nothing there yet
    with pytest.raises(WriteConflict):
        objects.write_if("_runtime/doc.json", b"again", None)
    data, tag = objects.read_tagged("_runtime/doc.json")
    assert data == b"one"
    objects.write_if("_runtime/doc.json", b"two", tag)
    with pytest.raises(WriteConflict):
        objects.write_if("_runtime/doc.json", b"three", tag)  # stale: "two" replaced what tag named
    assert objects.read_tagged("_runtime/doc.json")[0] == b"two"
    with pytest.raises(ObjectMissing):
        objects.read_tagged("_runtime/absent.json")


@pytest.mark.s3
def test_two_replicas_patching_from_the_same_read_give_one_success_and_one_409(objects: ObjectStore) -> None:
    barrier = threading.Barrier(2)
    replicas = [ParamsService(Settings(), MeetAfterRead(objects, barrier)) for _ in range(2)]

    async def both() -> list[object]:
        patches = [{"detector_conf": 0.4}, {"detector_conf": 0.6}]
        updates = [r.update(p, 0, f"replica-{i}") for i, (r, p) in enumerate(zip(replicas, patches, strict=True))]
        return await asyncio.gather(*updates, return_exceptions=True)

    results = asyncio.run(both())
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, PreconditionFailed)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "another replica" in str(losers[0])
    stored = read_document(objects, PARAMS_KEY, type(winners[0]))
    assert stored == winners[0] and stored.version == 1


@pytest.mark.s3
def test_aliases_moved_at_once_by_two_writers_are_both_kept(objects: ObjectStore, tmp_path: Path) -> None:
    ArtifactStore(objects, tmp_path / "cache").push_store(make_fake_store(tmp_path / "source"))
    barrier = threading.Barrier(2)
    writers = [ArtifactStore(MeetAfterRead(objects, barrier), tmp_path / f"cache-{i}") for i in range(2)]
    threads = [
        threading.Thread(target=w.set_alias, args=("face-gender", alias, "v1"))
        for w, alias in zip(writers, ("canary", "pinned"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    aliases = ArtifactStore(objects, tmp_path / "cache").aliases("face-gender")
    assert aliases["canary"] == aliases["pinned"] == "v1" and "stable" in aliases
