"""Model artifacts: a folder with ``manifest.json`` and weight files.

The manifest records everything needed to rebuild a network without guessing (the nanoGPT
checkpoint habit): architecture and hyper-parameters, input size and normalisation, labels,
each file's sha256 and size, metrics and provenance.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION: Literal[1] = 1
# Names, versions, aliases and file names share one safe alphabet: no slashes, no "..", no URLs.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Task = Literal["detect", "classify", "stylize", "style-gallery", "embed"]


class ArtifactError(Exception):
    """An artifact is missing, malformed, or does not match its manifest."""


def check_safe_name(value: str, what: str = "name") -> str:
    """Return ``value`` when it is a safe store name, else raise ``ValueError``."""
    if not SAFE_NAME.match(value) or ".." in value:
        raise ValueError(f"{what} {value!r} must match {SAFE_NAME.pattern} and contain no '..'")
    return value


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str) -> str:
        return check_safe_name(value, "file name")


class InputSpec(BaseModel):
    """How a network wants its input: square side in pixels and per-channel normalisation."""

    model_config = ConfigDict(extra="forbid")

    size: int = Field(gt=0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class Provenance(BaseModel):
    """How the weights were made; ``method`` says it plainly (e.g. ``untrained: random initialisation``)."""

    model_config = ConfigDict(extra="forbid")

    method: str
    data: str | None = None
    command: str | None = None
    commit: str | None = None
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))


class GalleryEntry(BaseModel):
    """One named style image of a style gallery artifact."""

    model_config = ConfigDict(extra="forbid")

    name: str
    file: str
    title: str
    description: str = ""
    artist: str | None = None  # paintings: who painted it, and when
    year: str | None = None

    @field_validator("name", "file")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_safe_name(value)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    version: str
    task: Task
    architecture: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    input: InputSpec | None = None
    labels: list[str] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    files: list[FileEntry]
    metrics: dict[str, float] = Field(default_factory=dict)
    provenance: Provenance
    gallery: list[GalleryEntry] = Field(default_factory=list)

    @field_validator("name", "version")
    @classmethod
    def _safe(cls, value: str) -> str:
        return check_safe_name(value)

    def file(self, path: str) -> FileEntry:
        """The entry for ``path``; raises ``ArtifactError`` when the manifest lacks it."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise ArtifactError(f"{self.name}/{self.version}: manifest lists no file {path!r}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(path=path.name, sha256=sha256_file(path), size=path.stat().st_size)


def parse_manifest(raw: bytes | str) -> Manifest:
    """Validate a manifest document; any problem becomes an ``ArtifactError``."""
    try:
        return Manifest.model_validate(json.loads(raw))
    except ValueError as error:  # json.JSONDecodeError and pydantic.ValidationError are ValueErrors
        raise ArtifactError(f"invalid manifest: {error}") from error


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST_NAME}")
    return parse_manifest(path.read_bytes())


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Check every listed file exists with the recorded size and sha256."""
    for entry in manifest.files:
        path = folder / entry.path
        if not path.is_file():
            raise ArtifactError(f"{manifest.name}/{manifest.version}: missing file {entry.path}")
        size = path.stat().st_size
        if size != entry.size:
            raise ArtifactError(
                f"{manifest.name}/{manifest.version}: {entry.path} has {size} bytes, manifest says {entry.size}"
            )
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise ArtifactError(
                f"{manifest.name}/{manifest.version}: sha256 mismatch for {entry.path} "
                f"(got {digest[:12]}…, manifest says {entry.sha256[:12]}…)"
            )


def load_artifact(folder: Path) -> Manifest:
    """Read and fully verify the artifact in ``folder``; never returns a half-valid one."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    return manifest


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def pack_artifact(folder: Path, **fields: Any) -> Manifest:
    """Write ``manifest.json`` for the weight files already in ``folder``.

    ``fields`` are the manifest's fields except ``files``, which are listed and hashed here.
    """
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    manifest = Manifest(files=[file_entry(p) for p in paths], **fields)
    write_manifest(folder, manifest)
    return manifest


def repack_artifact(folder: Path, **changes: Any) -> Manifest:
    """Re-list and re-hash every file of ``folder`` (a model card written after packing, say), keeping the rest."""
    fields = read_manifest(folder).model_dump(exclude={"files", "schema_version"}) | changes
    return pack_artifact(folder, **fields)
