"""Fake predictors and a small local store of fake artifacts, for fast HTTP-layer tests.

Fakes enter at the model-plan edge only: the real manager, store, routers and decoding all run.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from app.manager import SlotPlan
from app.store.objects import ObjectStore
from models.artifact import GalleryEntry, InputSpec, Manifest, load_artifact, pack_artifact
from models.starter import set_local_alias
from models.style.types import NSTRequest, NSTResult


@dataclass(frozen=True)
class FakeDetection:
    box: tuple[float, float, float, float]
    score: float
    label: str


@dataclass(frozen=True)
class FakeClassification:
    label: str
    score: float
    probabilities: dict[str, float]


class ExclusiveUse:
    """Fails loudly if two threads ever use the same instance at once."""

    def __init__(self, manifest: Manifest, delay: float = 0.0) -> None:
        self.manifest = manifest
        self.delay = delay
        self._busy = threading.Lock()

    def _enter(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise AssertionError(f"{self.manifest.name} used by two threads at once")
        time.sleep(self.delay)
        self._busy.release()


class FakeDetector(ExclusiveUse):
    def predict(self, batch: list[Any]) -> list[list[FakeDetection]]:
        self._enter()
        # one box a quarter of the image's side, dropped below the request's min_size as the real pipeline does
        return [
            [
                FakeDetection(
                    (r.image.width / 4, r.image.height / 4, r.image.width / 2, r.image.height / 2),
                    max(r.conf, 0.9),
                    "face",
                )
            ]
            if min(r.image.width, r.image.height) / 4 >= r.min_size
            else []
            for r in batch
        ]


class FakeClassifier(ExclusiveUse):
    crop_margin = 0.1

    def predict(self, batch: list[Image.Image]) -> list[FakeClassification]:
        self._enter()
        return [FakeClassification("female", 0.75, {"female": 0.75, "male": 0.25}) for _ in batch]


class FakeStyle(ExclusiveUse):
    def predict(self, batch: list[Any]) -> list[Image.Image | NSTResult]:
        self._enter()
        results: list[Image.Image | NSTResult] = []
        for request in batch:
            content = request.content
            scale = min(1.0, request.max_side / max(content.size))
            painted = content.resize((max(1, round(content.width * scale)), max(1, round(content.height * scale))))
            # the nst slot answers as the torch NST predictor does: the image, its steps and its seconds
            results.append(NSTResult(painted, steps=1, seconds=0.0) if isinstance(request, NSTRequest) else painted)
        return results


class FakeGallery:
    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.manifest = manifest
        self._images = {e.name: Image.open(folder / e.file).convert("RGB") for e in manifest.gallery}

    def names(self) -> list[str]:
        return list(self._images)

    def image(self, name: str) -> Image.Image:
        return self._images[name].copy()


def fake_plans(delay: float = 0.0) -> list[SlotPlan]:
    return [
        SlotPlan("detector", "detector", lambda f, m, d: FakeDetector(m, delay)),
        SlotPlan("classifier", "classifier", lambda f, m, d: FakeClassifier(m, delay)),
        SlotPlan("style", "style", lambda f, m, d: FakeStyle(m, delay)),
        SlotPlan("nst", "style", lambda f, m, d: FakeStyle(m, delay)),
        SlotPlan("gallery", "gallery", lambda f, m, d: FakeGallery(f, m)),
    ]


def _artifact(store: Path, name: str, version: str, **fields: Any) -> Manifest:
    folder = store / name / version
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(f"{name}-{version}".encode() * 100)
    manifest = pack_artifact(folder, name=name, version=version, provenance={"method": "fake: test bytes"}, **fields)
    set_local_alias(store, name, "stable", version)
    return manifest


def make_fake_store(store: Path, classifier_input: int | None = None) -> Path:
    """A local store with one fake artifact per role, each aliased ``stable``; ``classifier_input``: the input
    side the classifier's manifest records (none by default)."""
    _artifact(
        store,
        "face-detector",
        "v1",
        task="detect",
        architecture="fake",
        labels=["face"],
        input=InputSpec(size=64),
        defaults={"conf": 0.25},
    )
    recorded = {"input": InputSpec(size=classifier_input)} if classifier_input else {}
    _artifact(store, "face-gender", "v1", task="classify", architecture="fake", labels=["female", "male"], **recorded)
    _artifact(store, "adain", "v1", task="stylize", architecture="fake")
    gallery = store / "style-gallery" / "v1"
    gallery.mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(gallery / "red.jpg")
    pack_artifact(
        gallery,
        name="style-gallery",
        version="v1",
        task="style-gallery",
        architecture="image-gallery",
        gallery=[GalleryEntry(name="red", file="red.jpg", title="Red")],
        provenance={"method": "fake: a red square"},
    )
    set_local_alias(store, "style-gallery", "stable", "v1")
    return store


def copy_as_version(source: Path, dest: Path, version: str) -> Path:
    """A copy of the artifact in ``source`` republished under another version (same weights)."""
    shutil.copytree(source, dest)
    manifest = load_artifact(dest)
    (dest / "manifest.json").unlink()
    pack_artifact(
        dest, name=manifest.name, version=version, **manifest.model_dump(exclude={"files", "name", "version"})
    )
    return dest


class DelegatingStore(ObjectStore):
    """Passes every call to ``inner``: a test subclasses it to make one call fail or wait."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner, self.uri = inner, inner.uri

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        return self.inner.read_tagged(key)

    def write_if(self, key: str, data: bytes, tag: str | None) -> None:
        self.inner.write_if(key, data, tag)

    def read_bytes(self, key: str) -> bytes:
        return self.inner.read_bytes(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.inner.write_bytes(key, data)

    def download(self, key: str, dest: Path) -> None:
        self.inner.download(key, dest)

    def upload(self, source: Path, key: str) -> None:
        self.inner.upload(source, key)

    def list_children(self, prefix: str) -> list[str]:
        return self.inner.list_children(prefix)
