"""Which content photos and style images are held out of AdaIN training, for evaluation only.

Two versioned rules; an artifact records the one it was trained under (``hyperparameters["held_out"]``, absent:
v1), and evaluation uses the artifact's rule.

- **v1**: a file is held out when its stem is one of the named images (the AdaIN release's usual test pictures,
  matched with or without a corpus prefix such as ``GlebSBrykin_la_muse``) or when a hash of its stem falls in
  the held-out share (one in eight). 39 photos and 29 paintings of ../shared's corpus.
- **v2** (5 December): v1's held-out images, and one *work* in three photos and one in four paintings by a
  salted hash of the work. A work is a stem, or the name ``WORKS`` gives the copies of one painting that the
  corpus holds under several names (three La Muse, four Great Waves...), so that no copy of a held-out painting
  is trained on. The held-out works divide in two by a second hash: test and validation, one image per work in
  each grid. 154 photos and 57 paintings of ../shared's corpus, so that a grid's medians stop moving with which
  eight photos it drew (docs/style.md). A work is named by its stem alone, so two different photos with one stem
  in two folders (Set5's and BSD100's ``img_002_SRF_2``) are one work: held out together, evaluated once.

Both depend on the file names alone, so every machine, every run and every later warm start holds out the same
images, whatever else the folder gains.
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
    """v1's held-out photos."""
    return training_and_held_out(folder, "content", "v1")[1]


def held_out_styles(folder: Path) -> list[Path]:
    """v1's held-out paintings."""
    return training_and_held_out(folder, "style", "v1")[1]


HELD_OUT_RULES = ("v1", "v2")
DEFAULT_RULE = "v1"  # artifacts that record no rule were trained under v1
V2_CONTENT_SHARE = 3
V2_STYLE_SHARE = 4
# Copies of one painting under several names in ../shared's corpus (found by a 16 x 16 grey-level correlation
# over every pair, then by eye): one work, held out or trained on together.
WORKS = {
    "GlebSBrykin_1": "starry_night_over_the_rhone",
    "jiwoogit_the_starry_night": "starry_night_over_the_rhone",
    "jcjohnson_starry_night": "the_starry_night",
    "jcjohnson_starry_night_crop": "the_starry_night",
    "GlebSBrykin_la_muse": "la_muse",
    "lengstrom_la_muse": "la_muse",
    "xunhuang1995_la_muse": "la_muse",
    "GlebSBrykin_wave": "great_wave",
    "jiwoogit_wave": "great_wave",
    "cysmith_wave_crop": "great_wave",
    "titu1994_wave_kanagawa": "great_wave",  # a modern copy: close enough to count as one
    "cysmith_water_lilies_crop": "water_lilies",  # two of Monet's series: kept together
    "titu1994_water-lilies-1919-2": "water_lilies",
    "xunhuang1995_mondrian": "mondrian",
    "xunhuang1995_mondrian_cropped": "mondrian",
    "GlebSBrykin_seated_nude": "seated_nude",
    "xunhuang1995_picasso_seated_nude_hr": "seated_nude",
    "xunhuang1995_woman_in_peasant_dress": "woman_in_peasant_dress",
    "xunhuang1995_woman_in_peasant_dress_cropped": "woman_in_peasant_dress",
}


HELD_OUT_TEXT = {
    "v1": "named test pictures and one stem in eight by hash",
    "v2": "v1's, and one work in three photos and one in four paintings by a salted hash",
}


def work_of(path: Path) -> str:
    return WORKS.get(path.stem, path.stem)


def _salted(key: str, salt: str, share: int) -> bool:
    return _hashed_out(f"{salt}:{key}", share)


def split_v2(paths: Sequence[Path], names: Sequence[str], share: int) -> tuple[list[Path], list[Path]]:
    """(training, held out) under v2, both in ``paths``' order: every image of a work v1 holds out (any of its
    copies) or the salted hash draws (one in ``share``)."""
    v1_held = set(split_held_out(paths, names)[1])
    held_works = {work_of(p) for p in paths if p in v1_held or _salted(work_of(p), "split-v2", share)}
    return [p for p in paths if work_of(p) not in held_works], [p for p in paths if work_of(p) in held_works]


def training_and_held_out(folder: Path, kind: str, rule: str = DEFAULT_RULE) -> tuple[list[Path], list[Path]]:
    """(training, held out) of the images under ``folder``: ``kind`` "content" (photos) or "style" (paintings)."""
    assert kind in ("content", "style"), kind
    assert rule in HELD_OUT_RULES, f"no held-out rule {rule!r}: {', '.join(HELD_OUT_RULES)}"
    names = HELD_OUT_CONTENT if kind == "content" else HELD_OUT_STYLES
    if rule == "v1":
        return split_held_out(list_images(folder), names)
    return split_v2(list_images(folder), names, V2_CONTENT_SHARE if kind == "content" else V2_STYLE_SHARE)


def v2_grid(folder: Path, kind: str, part: str) -> list[Path]:
    """v2's ``part`` ("test" or "validation") of the held-out images: one image per work (its first in sorted path
    order)."""
    assert part in ("test", "validation"), part
    firsts: dict[str, Path] = {}
    for path in training_and_held_out(folder, kind, "v2")[1]:
        firsts.setdefault(work_of(path), path)
    return [p for work, p in firsts.items() if _salted(work, "split-v2-test", 2) == (part == "test")]
