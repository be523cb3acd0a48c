"""The photo with its faces boxed and labelled, for ``--draw``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from deepcanvas.schemas import Box

COLOURS = {"female": (230, 70, 150), "male": (40, 130, 230)}
DEFAULT_COLOUR = (40, 200, 90)


def draw_boxes(photo: Path, boxes: Sequence[tuple[Box, str, float]], out: Path) -> None:
    """``boxes`` as (box, label, score) in the photo's pixels, after its EXIF orientation as the service reads it."""
    opened = Image.open(photo)
    image = (ImageOps.exif_transpose(opened) or opened).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for box, label, score in boxes:
        colour = COLOURS.get(label, DEFAULT_COLOUR)
        draw.rectangle(box, outline=colour, width=width)
        text = f"{label} {score:.2f}"
        left, top, right, bottom = draw.textbbox((box[0], box[1]), text)
        above = max(0.0, box[1] - (bottom - top) - 2 * width)
        draw.rectangle((left, above, right + 2 * width, above + bottom - top + 2 * width), fill=colour)
        draw.text((box[0] + width, above + width), text, fill=(255, 255, 255))
    image.save(out)
