"""No picture made from ../shared's images lives under ``models/`` (the code and the embedded store the image ships).

../shared's photos are for research and evaluation only and most of its paintings are not public domain, so a
thumbnail of them, a stylized output of them or detections drawn on them may not be committed. The one exception
is the style gallery (small re-encoded public-domain paintings), which ``models/store/style-gallery/`` holds and
this test leaves to its own checks. The other is the reference photos a painting's own manner is measured on
(``models/style/reference_photos/``: public-domain and CC0 photos scikit-image ships, none of ../shared's): those
exact files are allowed wherever they lie (an artifact carries copies), by their sha256, and nothing else.

How a file is judged: by its bytes (its magic number, confirmed by Pillow), so a renamed picture is caught too, and
by its name, so a ``.jpg``, ``.jpeg``, ``.webp`` or ``.gif`` is refused whatever it holds:

- JPEG (or MPO), WebP, GIF, BMP or TIFF: refused. Those are the formats of photographs and of pictures made from them;
  every chart this project draws is a PNG written by matplotlib.
- PNG: allowed only when it looks like a chart, that is when it has at most ``CHART_COLOURS`` distinct colours.
  Measured on the store when this test was written: the charts (precision-recall, ROC, confusion matrices,
  reliability, loss scatter plots) have 296 to 1,005 colours; the pictures that had to go (detections drawn on
  PASCAL VOC and crowd photos, thumbnails, stylized grids) had 27,000 to 620,000. A colour count needs no list
  of chart names to keep up to date, and a new chart passes while a new photo-like PNG fails. It is a guard
  against the accident this repository had, not against deliberate evasion: a photo quantised to a small
  palette would pass it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from models.artifact import sha256_file
from models.detector.validation.commands import SHEETS_FOLDER
from models.figures import FIGURES_ROOT, figures_folder

REPO = Path(__file__).resolve().parents[2]
GALLERY = Path("models/store/style-gallery")
REFERENCE_PHOTOS = Path("models/style/reference_photos")  # public domain and CC0 (their README.md)
# Their sha256, pinned: a picture added to that folder is not allowed by being there
REFERENCE_SHA256 = {
    "6920df7795cecc620fde643c0caa984e5f36cc657d580c50185f298e65c4332b",  # astronaut.png
    "160b07475dea93b8682da8904c6e5080b9d05e195ec8bbe87c8274cb64d8c2d9",  # chelsea.png
    "1ad61dbbf8d18c9677de43210af01b36060bd34947c0542a73201e995887706e",  # coffee.png
    "53617bcc3f2b6eea3cf4ce990bf6915571651c4b1789f1155b8a2b98510f9c49",  # rocket.png
}
SKIPPED_PARTS = {"__pycache__", ".staging", "_runtime"}  # git-ignored: runtime copies, never committed
CHART_COLOURS = 4096
# First bytes of PNG, JPEG, GIF, BMP, TIFF and WebP (RIFF); Pillow then confirms, so a weight file that happens to
# start with the same bytes is not taken for a picture.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".webp", ".gif"}
MAGIC_NUMBERS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def picture_format(path: Path) -> str | None:
    """Pillow's name for the picture format of ``path`` ("PNG", "JPEG", "WEBP", ...), or None if it is none."""
    with path.open("rb") as stream:
        head = stream.read(16)
    if not head.startswith(MAGIC_NUMBERS):
        return None
    try:
        with Image.open(path) as image:
            return str(image.format)
    except (OSError, ValueError):  # not a picture after all (UnidentifiedImageError is an OSError)
        return None


def is_chart(path: Path) -> bool:
    """A PNG with at most ``CHART_COLOURS`` distinct colours (``getcolors`` gives None beyond its limit)."""
    with Image.open(path) as image:
        return image.convert("RGB").getcolors(maxcolors=CHART_COLOURS) is not None


def shared_pictures(root: Path) -> list[str]:
    """Every picture under ``root/models`` (the gallery aside) that may show ../shared's images, with why."""
    found = []
    allowed = REFERENCE_SHA256
    for path in sorted((root / "models").rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or relative.is_relative_to(GALLERY) or SKIPPED_PARTS & set(relative.parts):
            continue
        kind = picture_format(path)
        if kind == "PNG" and sha256_file(path) in allowed:
            continue  # a reference photo (or an artifact's copy of one), byte for byte
        if path.suffix.lower() in PHOTO_SUFFIXES:
            found.append(f"{relative}: named as a photo ({kind or 'unreadable'})")
        elif kind == "PNG" and not is_chart(path):
            found.append(f"{relative}: a PNG with more than {CHART_COLOURS} colours, a picture rather than a chart")
        elif kind not in (None, "PNG"):
            found.append(f"{relative}: a {kind} picture")
    return found


def test_no_file_under_models_is_a_picture_made_from_shared_images() -> None:
    found = shared_pictures(REPO)
    assert not found, "pictures of ../shared's images must not be committed (draw them under runs/figures/):\n" + (
        "\n".join(found)
    )


def test_the_figures_folders_are_git_ignored() -> None:
    ignored = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines()}
    assert f"/{FIGURES_ROOT.as_posix()}/" in ignored
    for folder in (figures_folder("adain", "v3"), SHEETS_FOLDER):
        assert folder.is_relative_to(FIGURES_ROOT), folder


def test_only_the_pinned_reference_photos_pass_as_photos(tmp_path: Path) -> None:
    assert {sha256_file(p) for p in (REPO / REFERENCE_PHOTOS).glob("*.png")} == REFERENCE_SHA256  # and no other
    (tmp_path / REFERENCE_PHOTOS).mkdir(parents=True)
    pinned = sorted((REPO / REFERENCE_PHOTOS).glob("*.png"))[0]
    shutil.copyfile(pinned, tmp_path / REFERENCE_PHOTOS / pinned.name)
    artifact = tmp_path / "models" / "store" / "adain" / "v9"
    artifact.mkdir(parents=True)
    shutil.copyfile(pinned, artifact / f"reference_{pinned.name}")  # a copy of a pinned photo: allowed
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / REFERENCE_PHOTOS / "added.png")  # in the folder, not pinned: refused
    assert shared_pictures(tmp_path) == [
        f"{REFERENCE_PHOTOS}/added.png: a PNG with more than 4096 colours, a picture rather than a chart"
    ]
