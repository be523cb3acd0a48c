"""Contact sheets: every validation photo as a thumbnail with its boxes, to check the labels by eye.

Green: faces. Yellow: ignore regions. Red (when detections are given): a detector's boxes. The sheets show
../shared's photos: ``deepcanvas data detector-validation`` writes them under ``runs/figures/``, never into the
repository.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

THUMB = 256
COLUMNS = 6


def thumbnail(path: Path, entry: dict[str, Any], side: int, detections: list[list[float]] | None = None) -> Image.Image:
    with Image.open(path) as opened:
        photo = opened.convert("RGB")
    scale = side / max(photo.size)
    photo = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
    draw = ImageDraw.Draw(photo)
    layers = [(entry["ignore"], (255, 210, 0)), (entry["faces"], (0, 220, 0)), (detections or [], (255, 0, 0))]
    for boxes, colour in layers:
        for box in boxes:
            draw.rectangle([v * scale for v in box[:4]], outline=colour, width=1 if side <= THUMB else 2)
    return photo


def contact_sheet(
    shared: Path, photos: dict[str, dict[str, Any]], names: list[str], side: int = THUMB, columns: int = COLUMNS
) -> Image.Image:
    """``names`` as a grid of ``side``-px thumbnails, each captioned with its index and face count."""
    rows = math.ceil(len(names) / columns)
    sheet = Image.new("RGB", (columns * side, rows * (side + 14)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for k, name in enumerate(names):
        x, y = (k % columns) * side, (k // columns) * (side + 14)
        sheet.paste(thumbnail(shared / name, photos[name], side), (x, y + 14))
        draw.text((x + 2, y + 1), f"{k} {Path(name).name[:28]} {len(photos[name]['faces'])}", fill=(255, 255, 255))
    return sheet
