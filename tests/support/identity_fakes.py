"""Fakes for the identity routes: a photo is a row of 64 px colour blocks, each non-black block one "person".

``FakeBlockDetector`` finds one face per non-black block; ``FakeEmbedder`` maps a block's colour to a fixed
random unit vector, so the same colour is the same person (similarity 1) and two colours are strangers
(similarity near 0 in 128 dimensions). Uploads must be PNG, so colours survive exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.manager import SlotPlan
from models.artifact import InputSpec, Manifest, pack_artifact
from models.identity.types import EmbedRequest, FaceEmbedding
from models.starter import set_local_alias
from tests.support.fakes import ExclusiveUse, FakeDetection, fake_plans
from tests.support.images import encode

BLOCK = 64
BLACK = (0, 0, 0)
THRESHOLDS = {
    "verify_distance": 0.55,
    "identify_similarity": [{"gallery_size": 1, "similarity": 0.80}, {"gallery_size": 100, "similarity": 0.9}],
}


def people_photo(*colours: tuple[int, int, int]) -> bytes:
    """A PNG of one 64×64 block per colour, left to right; black blocks hold no face."""
    image = Image.new("RGB", (BLOCK * len(colours), BLOCK))
    for i, colour in enumerate(colours):
        image.paste(colour, (i * BLOCK, 0, (i + 1) * BLOCK, BLOCK))
    return encode(image, "PNG")


def descriptor_of(colour: tuple[int, int, int], dim: int = 128) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(bytes(colour)).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakeBlockDetector(ExclusiveUse):
    def predict(self, batch: list[Any]) -> list[list[FakeDetection]]:
        self._enter()
        found = []
        for request in batch:
            pixels = np.asarray(request.image)
            blocks = range(pixels.shape[1] // BLOCK)
            found.append(
                [
                    FakeDetection((i * BLOCK + 8.0, 8.0, (i + 1) * BLOCK - 8.0, BLOCK - 8.0), 0.9, "face")
                    for i in blocks
                    if pixels[BLOCK // 2, i * BLOCK + BLOCK // 2].any()
                ]
            )
        return found


class FakeEmbedder(ExclusiveUse):
    def predict(self, batch: list[EmbedRequest]) -> list[FaceEmbedding]:
        self._enter()
        results = []
        for request in batch:
            x1, y1, x2, y2 = request.box
            colour = tuple(int(c) for c in request.image[int((y1 + y2) / 2), int((x1 + x2) / 2)])
            landmarks = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]], np.float32)
            descriptor = descriptor_of(colour) if request.descriptor else None  # type: ignore[arg-type]
            results.append(FaceEmbedding(landmarks=landmarks, descriptor=descriptor))
        return results


def identity_plans(delay: float = 0.0) -> list[SlotPlan]:
    plans = [p for p in fake_plans(delay) if p.slot != "detector"]
    return [
        SlotPlan("detector", "detector", lambda f, m, d: FakeBlockDetector(m, delay)),
        *plans,
        SlotPlan("embedder", "embedder", lambda f, m, d: FakeEmbedder(m, delay)),
    ]


def add_fake_embedder(
    store: Path, version: str = "v1", alias: str | None = "stable", chip: int | None = None
) -> Manifest:
    """A fake embedder artifact; ``chip``: the input side it records (what a face needs, in pixels)."""
    folder = store / "face-embedder" / version
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(f"face-embedder-{version}".encode() * 100)
    manifest = pack_artifact(
        folder,
        name="face-embedder",
        version=version,
        task="embed",
        architecture="fake",
        hyperparameters={"thresholds": THRESHOLDS},
        provenance={"method": "fake: colour hashes"},
        **({"input": InputSpec(size=chip)} if chip else {}),
    )
    if alias:
        set_local_alias(store, "face-embedder", alias, version)
    return manifest
