"""Generated test images: no downloads, deterministic."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

# LFW3D-like crops: a skin ellipse inscribed in a grey 90×90 square.
SKIN, CORNER = (225, 180, 150), (128, 128, 128)


def face_like_photo(width: int = 320, height: int = 240, fmt: str = "JPEG") -> bytes:
    """A photo-like image with a skin-toned oval 'face' on a gradient background."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=(40 + y * 120 // height, 90, 160 - y * 80 // height))
    cx, cy, r = width // 2, height // 2, min(width, height) // 4
    draw.ellipse([cx - r, cy - int(r * 1.3), cx + r, cy + int(r * 1.3)], fill=(224, 180, 150))
    for dx in (-r // 2, r // 2):
        draw.ellipse([cx + dx - 6, cy - r // 3 - 4, cx + dx + 6, cy - r // 3 + 4], fill=(40, 30, 30))
    draw.arc([cx - r // 2, cy + r // 4, cx + r // 2, cy + r * 3 // 4], 20, 160, fill=(150, 60, 60), width=4)
    return encode(image, fmt)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def draw_face_crops(root: Path, people: int = 4, per_person: int = 2) -> Path:
    """LFW3D-like crops: a skin ellipse inscribed in a grey 90×90 square, dark eyes and mouth."""
    for person in range(people):
        for k in range(per_person):
            crop = Image.new("RGB", (90, 90), CORNER)
            draw = ImageDraw.Draw(crop)
            draw.ellipse((0, 0, 89, 89), fill=SKIN)
            draw.ellipse((22, 28, 36, 38), fill=(40, 30, 30))
            draw.ellipse((54, 28, 68, 38), fill=(40, 30, 30))
            draw.rectangle((32 + k, 66, 58, 72), fill=(120, 40, 40))
            path = root / f"Person_{person}" / f"Person_{person}_{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            crop.save(path)
    return root
