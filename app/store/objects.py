"""Object stores: flat keys (``name/version/file``) over a local folder or an S3 prefix."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from models.artifact import ArtifactError

READABLE = 0o644


class StoreUnavailable(ArtifactError):
    """The store could not be reached (network, permissions); worth retrying."""


class ObjectMissing(ArtifactError):
    """A key that does not exist in the store."""


class WriteConflict(ArtifactError):
    """A conditional write found the object changed (or created) since it was read."""


class ObjectStore(ABC):
    """Byte-level access to a store; keys use ``/`` and never start with it."""

    uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """The object and a tag that changes whenever it does (S3: its ETag); ``ObjectMissing`` if absent."""

    @abstractmethod
    def write_if(self, key: str, data: bytes, tag: str | None) -> None:
        """Write only if the object still has ``tag`` (``None``: only if it does not exist), else ``WriteConflict``.

        The compare and the write are one step for every writer of the store, so two replicas updating
        the same document cannot both succeed from the same read.
        """

    @abstractmethod
    def download(self, key: str, dest: Path) -> None:
        """Copy ``key`` to the local file ``dest`` (written whole or not at all)."""

    @abstractmethod
    def upload(self, source: Path, key: str) -> None: ...

    @abstractmethod
    def list_children(self, prefix: str) -> list[str]:
        """Immediate child names (files and folders) below ``prefix``."""


def update_object(objects: ObjectStore, key: str, change: Callable[[bytes | None], bytes], attempts: int = 5) -> bytes:
    """Read-modify-write ``key`` with conditional writes; returns what was written.

    ``change`` maps the current bytes (None when the object does not exist) to the new ones. When another
    writer wins in between, it runs again on a fresh read, so both changes survive; ``WriteConflict``
    after ``attempts`` lost races.
    """
    for _ in range(attempts):
        try:
            current, tag = objects.read_tagged(key)
        except ObjectMissing:
            current, tag = None, None
        updated = change(current)
        try:
            objects.write_if(key, updated, tag)
            return updated
        except WriteConflict:
            continue
    raise WriteConflict(f"{objects.uri}: {key} kept changing ({attempts} conditional writes lost)")


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ArtifactError(f"key {key!r} escapes the store")
        return path

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(f"{self.uri}: no object {key}")
        return path.read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a document.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
        os.chmod(tmp.name, READABLE)  # NamedTemporaryFile makes 0600 files; other users may serve this store
        os.replace(tmp.name, path)

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        data = self.read_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def write_if(self, key: str, data: bytes, tag: str | None) -> None:
        with self._locked(key):
            try:
                current: str | None = self.read_tagged(key)[1]
            except ObjectMissing:
                current = None
            if current != tag:
                raise WriteConflict(f"{self.uri}: {key} changed since it was read")
            self.write_bytes(key, data)

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """An exclusive lock beside ``key``, shared by every process using this folder (POSIX advisory lock)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def download(self, key: str, dest: Path) -> None:
        path = self._path(key)
        if not path.is_file():
            raise ObjectMissing(f"{self.uri}: no object {key}")
        shutil.copyfile(path, dest)

    def upload(self, source: Path, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    def list_children(self, prefix: str) -> list[str]:
        path = self._path(prefix) if prefix else self.root
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


class S3ObjectStore(ObjectStore):
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, key: str, action: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, action)(Bucket=self.bucket, **kwargs)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(f"{self.uri}: no object {key}") from error
            if code == "NoSuchBucket":
                raise ObjectMissing(f"{self.uri}: no bucket {self.bucket}") from error
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise WriteConflict(f"{self.uri}: {key} changed since it was read ({code})") from error
            raise StoreUnavailable(f"{self.uri}: {action} {key} failed: {code or error}") from error
        except BotoCoreError as error:
            raise StoreUnavailable(f"{self.uri}: {action} {key} failed: {error}") from error

    @contextmanager
    def _streaming(self, key: str) -> Iterator[None]:
        """A body's read errors as ``StoreUnavailable``, like ``_call``'s: a connection cut while the body streams
        in raises from ``read()``, after ``get_object`` returned, and its botocore error (no ``ArtifactError``,
        mostly no ``OSError``) got past every caller's handling: it ended the poll task and the start's loads."""
        from botocore.exceptions import BotoCoreError

        try:
            yield
        except BotoCoreError as error:
            raise StoreUnavailable(f"{self.uri}: reading {key} failed: {error}") from error

    def read_bytes(self, key: str) -> bytes:
        return self.read_tagged(key)[0]

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(key, "put_object", Key=self._key(key), Body=data)

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        response = self._call(key, "get_object", Key=self._key(key))
        with self._streaming(key):
            data: bytes = response["Body"].read()
        return data, str(response["ETag"])

    def write_if(self, key: str, data: bytes, tag: str | None) -> None:
        # S3 conditional writes: If-Match on the ETag read, or If-None-Match * to create only.
        condition = {"IfMatch": tag} if tag is not None else {"IfNoneMatch": "*"}
        self._call(key, "put_object", Key=self._key(key), Body=data, **condition)

    def download(self, key: str, dest: Path) -> None:
        response = self._call(key, "get_object", Key=self._key(key))
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            try:
                with self._streaming(key):
                    shutil.copyfileobj(response["Body"], tmp, 1 << 20)
            except BaseException:
                os.unlink(tmp.name)  # written whole or not at all: no partial file beside ``dest``
                raise
        os.chmod(tmp.name, READABLE)
        os.replace(tmp.name, dest)

    def upload(self, source: Path, key: str) -> None:
        with source.open("rb") as stream:
            self._call(key, "put_object", Key=self._key(key), Body=stream)

    def list_children(self, prefix: str) -> list[str]:
        base = self._key(prefix).strip("/")
        base = f"{base}/" if base else ""
        names: set[str] = set()
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call(prefix, "list_objects_v2", Prefix=base, Delimiter="/", **extra)
            names.update(p["Prefix"][len(base) :].strip("/") for p in page.get("CommonPrefixes", []))
            names.update(o["Key"][len(base) :] for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return sorted(n for n in names if n)
            token = page.get("NextContinuationToken")


def make_s3_client(endpoint_url: str | None, region: str, timeout_s: float) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def open_object_store(
    uri: str, endpoint_url: str | None = None, region: str = "us-east-1", timeout_s: float = 10.0
) -> ObjectStore:
    """An object store for ``file:///path`` or ``s3://bucket/prefix``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        return S3ObjectStore(parsed.netloc, parsed.path, make_s3_client(endpoint_url, region, timeout_s))
    raise ArtifactError(f"unsupported store URI {uri!r}: use file:///path or s3://bucket/prefix")
