"""Which content photos and style images are held out of AdaIN training, for evaluation only.

A file is held out when its stem is one of the named images (the AdaIN release's usual test pictures,
matched with or without a corpus prefix such as ``GlebSBrykin_la_muse``) or when a hash of its stem
falls in the held-out share. The rule depends on the file name alone, so every machine, every run and
every later warm start holds out the same images, whatever else the folder gains.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

# A portrait, a landscape, a seascape; a cubist and a fauvist painting, an abstract and a pencil drawing.
HELD_OUT_CONTENT = ("brad_pitt", "golden_gate", "sailboat")
HELD_OUT_STYLES = ("asheville", "la_muse", "sketch", "woman_with_hat_matisse")
HELD_OUT_SHARE = 8  # one stem in eight, by hash
# The validation split never takes more than this many held-out images of each kind, so that those beyond it
# stay unseen (evaluate.unseen_images): a second test for a setting chosen on validation after the test grid
# was seen.
VALIDATION_MAX = 16
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted so that every machine sees the same order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _named(stem: str, names: Sequence[str]) -> bool:
    return any(stem == name or stem.endswith(f"_{name}") for name in names)


def _hashed_out(stem: str, share: int) -> bool:
    return share > 0 and int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) % share == 0


def split_held_out(
    paths: Sequence[Path], names: Sequence[str], share: int = HELD_OUT_SHARE
) -> tuple[list[Path], list[Path]]:
    """(training, held out), both in ``paths``' order.

    Held out: the named stems and one stem in ``share`` by hash (``share=0``: the named ones only). When
    that leaves nothing out of two or more files, the last quarter (at least one) is held out instead.
    """
    held = [p for p in paths if _named(p.stem, names) or _hashed_out(p.stem, share)]
    if not held and len(paths) >= 2:
        held = list(paths[len(paths) - max(1, len(paths) // 4) :])
    return [p for p in paths if p not in held], held


def held_out_contents(folder: Path) -> list[Path]:
    return split_held_out(list_images(folder), HELD_OUT_CONTENT)[1]


def held_out_styles(folder: Path) -> list[Path]:
    return split_held_out(list_images(folder), HELD_OUT_STYLES)[1]
