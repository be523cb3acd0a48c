"""Public-domain paintings for the style gallery, identified by eye in the style corpus, re-encoded small.

Only works by artists who died before 1925 (public domain worldwide); each entry names the corpus file it is
re-encoded from, so ``deepcanvas models gallery`` rebuilds the gallery from the same corpus on any machine.
The corpus also holds modern copies and pastiches of famous paintings (v2 shipped two by mistake: a recoloured
illustration after Hokusai's wave, and a signed modern portrait after Van Gogh), so each file here was checked
by eye, at full size, against the original it is credited to: the print itself, no signature of a later hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from models.artifact import GalleryEntry, Manifest, Provenance, pack_artifact
from models.style.gallery import jpeg_bytes, write_procedural_styles

PAINTING_SIDE = 384  # the longer side of a gallery painting: AdaIN reads only its feature statistics


@dataclass(frozen=True)
class Painting:
    name: str
    corpus_file: str
    title: str
    artist: str
    year: str
    description: str


PAINTINGS: tuple[Painting, ...] = (
    Painting(
        "starry-night",
        "jcjohnson_starry_night.jpg",
        "The Starry Night",
        "Vincent van Gogh",
        "1889",
        "Swirling night sky in thick blue and yellow strokes.",
    ),
    Painting(
        "starry-night-rhone",
        "GlebSBrykin_1.jpg",
        "Starry Night Over the Rhône",
        "Vincent van Gogh",
        "1888",
        "Gas lights reflected in a deep blue river.",
    ),
    Painting(
        "great-wave",
        "GlebSBrykin_wave.jpg",
        "The Great Wave off Kanagawa",
        "Katsushika Hokusai",
        "c. 1831",
        "Woodblock print: Prussian blue waves, clawed foam, flat colour.",
    ),
    Painting(
        "church-auvers",
        "pkuanjie_250px-Vincent_van_Gogh_-_The_Church_in_Auvers-sur-Oise,_View_from_the_Chevet_-_Google_Art_Project.jpg",
        "The Church at Auvers",
        "Vincent van Gogh",
        "1890",
        "Cobalt sky and a wavering church in heavy outlines.",
    ),
    Painting(
        "wheat-field-cypresses",
        "pkuanjie_Vincent-van-Gogh-Whaet-Field-with-Cypresses.-Image-via-wikimedia.org_.jpg",
        "Wheat Field with Cypresses",
        "Vincent van Gogh",
        "1889",
        "Golden wheat, curling clouds, dark cypresses.",
    ),
    Painting(
        "mona-lisa",
        "jiwoogit_monalisa.jpg",
        "Mona Lisa",
        "Leonardo da Vinci",
        "c. 1503–1519",
        "Sfumato: soft browns and greens, smoky transitions.",
    ),
    Painting(
        "plum-blossoms",
        "titu1994_japanese_flower_sakai_hoitsu.jpg",
        "Flowering plum (screen painting)",
        "Sakai Hōitsu",
        "early 19th century",
        "Rinpa school: blossoms and branches on a gold ground.",
    ),
)


def painting_image(corpus: Path, painting: Painting, side: int = PAINTING_SIDE) -> Image.Image:
    """The painting from the corpus as RGB, its longer side shrunk to ``side``."""
    with Image.open(corpus / painting.corpus_file) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return rgb


def make_painting_gallery(corpus: Path, folder: Path, name: str = "style-gallery", version: str = "v3") -> Manifest:
    """The procedural styles plus the public-domain paintings, as one ``style-gallery`` artifact in ``folder``."""
    entries = write_procedural_styles(folder)
    for painting in PAINTINGS:
        (folder / f"{painting.name}.jpg").write_bytes(jpeg_bytes(painting_image(corpus, painting)))
        entries.append(
            GalleryEntry(
                name=painting.name,
                file=f"{painting.name}.jpg",
                title=painting.title,
                description=painting.description,
                artist=painting.artist,
                year=painting.year,
            )
        )
    return pack_artifact(
        folder,
        name=name,
        version=version,
        task="style-gallery",
        architecture="image-gallery",
        hyperparameters={"painting_side": PAINTING_SIDE, "procedural_side": 256},
        gallery=entries,
        provenance=Provenance(
            method="procedural textures from models/style/gallery.py, and public-domain paintings (artists who died "
            f"before 1925) re-encoded at {PAINTING_SIDE} px from the style corpus by models/style/paintings.py",
            data="style-corpus/paintings: " + ", ".join(p.corpus_file for p in PAINTINGS),
        ),
    )
