"""The artifact store against a local folder and a real S3 endpoint (moto_server on loopback)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ResponseStreamingError

from app.store import ArtifactStore, LocalObjectStore, S3ObjectStore
from app.store.objects import StoreUnavailable, make_s3_client, open_object_store
from models.artifact import ArtifactError, pack_artifact
from tests.support.servers import MotoServer, free_port


def _local_artifact(root: Path, name: str, version: str, payload: bytes) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(payload)
    pack_artifact(
        folder, name=name, version=version, task="classify", architecture="facenet", provenance={"method": "test"}
    )
    return folder


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(LocalObjectStore(tmp_path / "store"), tmp_path / "cache")
        return
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    moto.client().create_bucket(Bucket=bucket)
    objects = S3ObjectStore(bucket, "deepcanvas/models", make_s3_client(moto.url, "us-east-1", 5))
    yield ArtifactStore(objects, tmp_path / "cache")


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.s3
def test_pushed_artifact_is_fetched_verified_into_the_cache(store: ArtifactStore, tmp_path: Path) -> None:
    source = _local_artifact(tmp_path / "src", "face-gender", "v1", b"weights-v1" * 50)
    store.push(source, alias="stable")
    folder, manifest = store.fetch("face-gender", "stable")
    assert manifest.version == "v1"
    assert (folder / "weights.safetensors").read_bytes() == b"weights-v1" * 50
    assert folder.is_relative_to(store.cache_dir)
    assert store.names() == ["face-gender"]
    assert store.versions("face-gender") == ["v1"]


@pytest.mark.s3
def test_alias_moves_to_a_new_version(store: ArtifactStore, tmp_path: Path) -> None:
    store.push(_local_artifact(tmp_path / "src", "face-gender", "v1", b"one" * 10), alias="stable")
    store.push(_local_artifact(tmp_path / "src", "face-gender", "v2", b"two" * 10))
    store.set_alias("face-gender", "stable", "v2")
    assert store.resolve("face-gender", "stable") == "v2"
    assert store.fetch("face-gender", "stable")[1].version == "v2"
    assert store.aliases("face-gender") == {"stable": "v2"}


@pytest.mark.s3
def test_missing_artifact_and_alias_to_nothing_are_refused(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError, match="no artifact"):
        store.fetch("face-gender", "v9")
    with pytest.raises(ArtifactError):
        store.set_alias("face-gender", "stable", "v9")


@pytest.mark.s3
def test_corrupt_object_is_refused_and_leaves_no_cached_copy(store: ArtifactStore, tmp_path: Path) -> None:
    store.push(_local_artifact(tmp_path / "src", "face-gender", "v1", b"good" * 25))
    store.objects.write_bytes("face-gender/v1/weights.safetensors", b"evil" * 25)  # same size, other bytes
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        store.fetch("face-gender", "v1")
    assert not (store.cache_dir / "face-gender" / "v1").exists()


@pytest.mark.s3
def test_missing_object_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    source = _local_artifact(tmp_path / "src", "face-gender", "v1", b"good" * 25)
    store.push(source)
    if isinstance(store.objects, S3ObjectStore):
        store.objects.client.delete_object(
            Bucket=store.objects.bucket, Key=store.objects._key("face-gender/v1/weights.safetensors")
        )
    else:
        (store.objects.root / "face-gender" / "v1" / "weights.safetensors").unlink()
    with pytest.raises(ArtifactError, match="no object"):
        store.fetch("face-gender", "v1")


def test_a_stale_cached_copy_is_fetched_again(tmp_path: Path) -> None:
    store = ArtifactStore(LocalObjectStore(tmp_path / "store"), tmp_path / "cache")
    store.push(_local_artifact(tmp_path / "src", "face-gender", "v1", b"good" * 25))
    folder, _ = store.fetch("face-gender", "v1")
    (folder / "weights.safetensors").write_bytes(b"rot!" * 25)
    folder, _ = store.fetch("face-gender", "v1")
    assert (folder / "weights.safetensors").read_bytes() == b"good" * 25


@pytest.mark.parametrize("ref", ["../v1", "v1/../../x", "http://evil/v1", "a/b"])
def test_unsafe_versions_never_reach_the_store(tmp_path: Path, ref: str) -> None:
    store = ArtifactStore(LocalObjectStore(tmp_path / "store"), tmp_path / "cache")
    with pytest.raises(ValueError):
        store.fetch("face-gender", ref)


def test_unreachable_s3_endpoint_is_reported_as_unavailable(tmp_path: Path) -> None:
    objects = open_object_store("s3://bucket/prefix", f"http://127.0.0.1:{free_port()}", timeout_s=1)
    with pytest.raises(StoreUnavailable):
        ArtifactStore(objects, tmp_path / "cache").fetch("face-gender", "v1")


@pytest.mark.s3
def test_push_store_publishes_every_version_and_the_local_aliases(store: ArtifactStore, tmp_path: Path) -> None:
    root = tmp_path / "local"
    _local_artifact(root, "face-gender", "v1", b"one" * 10)
    _local_artifact(root, "face-gender", "v2", b"two" * 10)
    (root / "face-gender" / "aliases.json").write_text('{"stable": "v1"}')  # not the newest: aliases must win
    store.push_store(root)
    assert store.versions("face-gender") == ["v1", "v2"]
    assert store.resolve("face-gender", "stable") == "v1"


class CutBody:
    """A response body whose connection is cut as it streams in (botocore raises from ``read``)."""

    def read(self, size: int = -1) -> bytes:
        raise ResponseStreamingError(error="Connection broken: IncompleteRead(12 bytes read, 88 more expected)")


class CutClient:
    """An S3 client whose every object answers, then breaks off: the error comes after ``get_object`` returned."""

    def get_object(self, **_: object) -> dict[str, object]:
        return {"Body": CutBody(), "ETag": '"etag"'}


@pytest.mark.parametrize("read", ["read_bytes", "read_tagged", "download"])
def test_a_connection_cut_while_an_object_streams_in_is_reported_as_unavailable(tmp_path: Path, read: str) -> None:
    # Not a bare botocore error: the callers (the poll, the model loads) handle the store's errors, and the
    # poll task or the start's loads ended on anything else.
    objects = S3ObjectStore("bucket", "models", CutClient())
    arguments = ("_runtime/active.json", tmp_path / "active.json") if read == "download" else ("_runtime/active.json",)
    with pytest.raises(StoreUnavailable, match=r"_runtime/active\.json"):
        getattr(objects, read)(*arguments)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
