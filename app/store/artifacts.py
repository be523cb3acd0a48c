"""Versioned artifacts in an object store: resolve aliases, fetch into a verified local cache, publish."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from app.store.objects import LocalObjectStore, ObjectMissing, ObjectStore, WriteConflict, update_object
from models.artifact import (
    MANIFEST_NAME,
    ArtifactError,
    Manifest,
    check_safe_name,
    load_artifact,
    parse_manifest,
    verify_files,
)

log = logging.getLogger("deepcanvas.store")
ALIASES_NAME = "aliases.json"


class ArtifactStore:
    """``<store>/<name>/<version>/{manifest.json, files}`` and ``<store>/<name>/aliases.json``."""

    def __init__(self, objects: ObjectStore, cache_dir: Path) -> None:
        self.objects = objects
        # One cache folder per store, so two stores' "name/version" never overwrite each other's copies.
        self.cache_dir = cache_dir / hashlib.sha256(objects.uri.encode()).hexdigest()[:16]

    @property
    def uri(self) -> str:
        return self.objects.uri

    def names(self) -> list[str]:
        return [n for n in self.objects.list_children("") if _is_safe(n)]

    def versions(self, name: str) -> list[str]:
        check_safe_name(name, "model name")
        return [v for v in self.objects.list_children(name) if v != ALIASES_NAME and _is_safe(v)]

    def aliases(self, name: str) -> dict[str, str]:
        check_safe_name(name, "model name")
        try:
            raw = self.objects.read_bytes(f"{name}/{ALIASES_NAME}")
        except ObjectMissing:
            return {}
        return _parse_aliases(name, raw)

    def set_alias(self, name: str, alias: str, version: str, attempts: int = 5) -> None:
        """Point ``alias`` at ``version``; a conditional write keeps another writer's alias change."""
        check_safe_name(alias, "alias")
        self.manifest(name, version)  # refuse an alias to a version that does not exist

        def moved(raw: bytes | None) -> bytes:
            aliases = _parse_aliases(name, raw) if raw is not None else {}
            return json.dumps(aliases | {alias: version}, indent=2).encode()

        try:
            update_object(self.objects, f"{name}/{ALIASES_NAME}", moved, attempts)
        except WriteConflict as error:
            raise WriteConflict(f"{name}/{ALIASES_NAME} kept changing; {alias} was not moved to {version}") from error

    def resolve(self, name: str, ref: str) -> str:
        """The version that ``ref`` (a version or an alias) names."""
        check_safe_name(name, "model name")
        check_safe_name(ref, "version or alias")
        return self.aliases(name).get(ref, ref)

    def manifest(self, name: str, version: str) -> Manifest:
        check_safe_name(name, "model name")
        check_safe_name(version, "version")
        try:
            raw = self.objects.read_bytes(f"{name}/{version}/{MANIFEST_NAME}")
        except ObjectMissing as error:
            raise ArtifactError(f"{self.uri}: no artifact {name}/{version}") from error
        manifest = parse_manifest(raw)
        if (manifest.name, manifest.version) != (name, version):
            raise ArtifactError(f"{name}/{version}: manifest names itself {manifest.name}/{manifest.version}")
        return manifest

    def fetch(self, name: str, ref: str) -> tuple[Path, Manifest]:
        """Copy an artifact into the cache, verify every file, and return the cached folder."""
        version = self.resolve(name, ref)
        manifest = self.manifest(name, version)
        target = self.cache_dir / name / version
        if target.is_dir():
            try:
                verify_files(target, manifest)
                return target, manifest
            except ArtifactError as error:
                log.warning("cached copy of %s/%s is stale (%s); fetching again", name, version, error)
                shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
        try:
            for entry in manifest.files:
                self.objects.download(f"{name}/{version}/{entry.path}", staging / entry.path)
            verify_files(staging, manifest)
            (staging / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target, manifest

    def push(self, folder: Path, alias: str | None = None) -> Manifest:
        """Publish a local artifact folder; the manifest goes last so readers never see a partial one."""
        manifest = load_artifact(folder)
        prefix = f"{manifest.name}/{manifest.version}"
        for entry in manifest.files:
            self.objects.upload(folder / entry.path, f"{prefix}/{entry.path}")
        self.objects.upload(folder / MANIFEST_NAME, f"{prefix}/{MANIFEST_NAME}")
        if alias:
            self.set_alias(manifest.name, alias, manifest.version)
        return manifest

    def push_store(self, root: Path) -> list[Manifest]:
        """Publish every artifact of a local store folder, then the aliases its ``aliases.json`` files name."""
        local = ArtifactStore(LocalObjectStore(root), self.cache_dir)
        pushed = [self.push(root / name / version) for name in local.names() for version in local.versions(name)]
        for name in local.names():
            for alias, version in local.aliases(name).items():
                self.set_alias(name, alias, version)
        return pushed


def _parse_aliases(name: str, raw: bytes) -> dict[str, str]:
    try:
        aliases = json.loads(raw)
    except ValueError as error:
        raise ArtifactError(f"{name}/{ALIASES_NAME} is not valid JSON: {error}") from error
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ArtifactError(f"{name}/{ALIASES_NAME} must map alias names to versions")
    return aliases


def _is_safe(value: str) -> bool:
    try:
        check_safe_name(value)
    except ValueError:
        return False
    return True
