"""Procedural, painting-like textures for the starter style gallery.

Every texture is drawn from a seeded ``numpy`` generator with numpy and Pillow only, so the
gallery is the project's own work (no third-party artworks) and identical on every run.
Each painter takes ``(rng, side)`` and returns a ``(side, side, 3)`` uint8 RGB array.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Rgb = tuple[int, int, int]


def _hex(*codes: str) -> np.ndarray:
    """Palette (K, 3) float32 from ``#rrggbb`` codes."""
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in codes], dtype=np.float32)


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), each (side, side) in [0, 1)."""
    axis = (np.arange(side, dtype=np.float32) + 0.5) / side
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return y, x


def _canvas_grain(image: np.ndarray, rng: np.random.Generator, strength: float = 6.0) -> np.ndarray:
    """Add a faint canvas weave and paint grain so flat areas read as painted, not rendered."""
    side = image.shape[0]
    y, x = np.mgrid[0:side, 0:side]
    weave = 0.5 * strength * np.sin(x * np.pi / 2) * np.sin(y * np.pi / 2)  # (side, side)
    noise = rng.normal(0.0, strength, image.shape[:2])
    grained = image.astype(np.float32) + (weave + noise)[..., None]
    return np.clip(grained, 0, 255).astype(np.uint8)


def _colour(palette: np.ndarray, index: int, rng: np.random.Generator, jitter: float = 18.0) -> Rgb:
    r, g, b = np.clip(palette[index % len(palette)] + rng.normal(0.0, jitter, 3), 0, 255).astype(int)
    return int(r), int(g), int(b)


def brush_waves(rng: np.random.Generator, side: int) -> np.ndarray:
    """Short strokes laid along a swirling wave field, in sea blues and foam whites."""
    palette = _hex("#0b3c5d", "#1d6fa3", "#3fa7d6", "#8fd3e8", "#f2f5f0", "#2a9d8f")
    image = Image.new("RGB", (side, side), (20, 70, 110))
    draw = ImageDraw.Draw(image)
    for _ in range(side * 9):
        x, y = rng.uniform(0, side, 2)
        u, v = x / side, y / side
        angle = np.pi * (np.sin(6.0 * u + 3.0 * np.sin(4.0 * v)) * 0.6 + 0.4 * np.cos(5.0 * v))
        length = rng.uniform(0.04, 0.09) * side
        band = int((v * 5 + 0.8 * np.sin(7.0 * u + 2.0 * v) + rng.normal(0, 0.35)) % len(palette))
        end = (x + length * np.cos(angle), y + length * np.sin(angle))
        draw.line([(x, y), end], fill=_colour(palette, band, rng), width=int(rng.integers(3, 7)))
    blurred = image.filter(ImageFilter.GaussianBlur(0.7))
    return _canvas_grain(np.asarray(blurred), rng)


def mosaic_tiles(rng: np.random.Generator, side: int) -> np.ndarray:
    """Voronoi tesserae in terracotta, ochre and turquoise, set in pale grout."""
    palette = _hex("#c8553d", "#f28f3b", "#ffd5c2", "#588b8b", "#2d6a6a", "#e9c46a")
    cells = 12
    centres = (np.stack(np.meshgrid(np.arange(cells), np.arange(cells)), -1).reshape(-1, 2) + 0.5) / cells
    centres = centres + rng.uniform(-0.35, 0.35, centres.shape) / cells  # (K, 2) jittered grid
    y, x = _grid(side)
    points = np.stack([x, y], -1).reshape(-1, 1, 2)  # (P, 1, 2)
    distance = np.linalg.norm(points - centres[None], axis=-1) * side  # (P, K) in pixels
    nearest = np.argsort(distance, axis=1)[:, :2]  # (P, 2)
    d1, d2 = np.take_along_axis(distance, nearest, axis=1).T  # (P,) each
    tile_colour = palette[rng.integers(0, len(palette), len(centres))] + rng.normal(0, 14, (len(centres), 3))
    image = tile_colour[nearest[:, 0]] * (1.0 - 0.12 * np.clip(d1 / (0.6 * side / cells), 0, 1))[:, None]
    grout = (d2 - d1) < 2.2
    image[grout] = (226, 218, 200)
    return _canvas_grain(np.clip(image, 0, 255).reshape(side, side, 3), rng, strength=5.0)


def concentric_ripples(rng: np.random.Generator, side: int) -> np.ndarray:
    """Rings spreading from a few drops, the nearest drop's rings winning, in flat bands of colour."""
    palette = _hex("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8338ec", "#ffbe0b")
    y, x = _grid(side)
    drops = rng.uniform(0.1, 0.9, (3, 2))  # (3, 2) centres (x, y)
    radius = np.stack([np.hypot(x - cx, y - cy) for cx, cy in drops])  # (3, side, side)
    owner = np.argmin(radius, axis=0)  # like overlapping splashes on a pond, the nearest wins
    nearest = np.take_along_axis(radius, owner[None], axis=0)[0]  # (side, side)
    wobble = 0.006 * np.sin(np.arctan2(y - 0.5, x - 0.5) * 7 + 20 * nearest)  # hand-drawn, not compass-drawn
    ring = np.floor((nearest + wobble) * 22).astype(int)
    image = palette[(ring + 2 * owner) % len(palette)]
    return _canvas_grain(image, rng)


def ink_splatter(rng: np.random.Generator, side: int) -> np.ndarray:
    """Black, indigo and crimson ink drops and sprays on warm rice paper."""
    paper = np.full((side, side, 3), (238, 226, 200), dtype=np.float32)
    noise = rng.normal(0, 1, (side, side)).astype(np.float32)
    fibres = np.mean([np.roll(noise, shift, axis=1) for shift in range(-3, 4)], axis=0)  # (side, side), streaky
    paper += 12.0 * fibres[..., None]
    mask = Image.new("L", (side, side), 0)
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    for ink in ((15, 15, 20), (40, 45, 120), (170, 20, 40), (15, 15, 20)):
        mask.paste(0, (0, 0, side, side))
        _splat(ImageDraw.Draw(mask), rng, side)
        soft = mask.filter(ImageFilter.GaussianBlur(0.8))
        image.paste(Image.new("RGB", (side, side), ink), (0, 0), soft)
    return _canvas_grain(np.asarray(image), rng, strength=3.0)


def _splat(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    """One drop: a body, satellite droplets flung outwards, and a few tapering streaks."""
    cx, cy = rng.uniform(0.15, 0.85, 2) * side
    body = rng.uniform(0.05, 0.1) * side
    draw.ellipse([cx - body, cy - body * 0.8, cx + body, cy + body * 0.9], fill=255)
    for _ in range(70):
        angle, reach = rng.uniform(0, 2 * np.pi), body * rng.uniform(0.8, 3.2)
        size = max(1.0, body * 0.35 / reach * body * rng.uniform(0.2, 1.0))
        x, y = cx + reach * np.cos(angle), cy + reach * np.sin(angle)
        draw.ellipse([x - size, y - size, x + size, y + size], fill=255)
    for _ in range(5):
        angle = rng.uniform(0, 2 * np.pi)
        end = (cx + 2.5 * body * np.cos(angle), cy + 2.5 * body * np.sin(angle))
        draw.line([(cx, cy), end], fill=255, width=int(rng.integers(2, 5)))


def stained_glass(rng: np.random.Generator, side: int) -> np.ndarray:
    """Jewel-coloured shards cut by straight lead lines, lit from behind."""
    palette = _hex("#9b1d20", "#1b3b8b", "#f2b705", "#0f7b3c", "#6a2c91", "#d9480f", "#2a9df4")
    y, x = _grid(side)
    code = np.zeros((side, side), dtype=np.int64)
    lead = np.full((side, side), np.inf, dtype=np.float32)
    for bit in range(13):
        py, px = rng.uniform(0.05, 0.95, 2)
        angle = rng.uniform(0, np.pi)
        signed = (x - px) * np.sin(angle) - (y - py) * np.cos(angle)  # distance to the line, in [0, 1] units
        code |= (signed > 0).astype(np.int64) << bit
        lead = np.minimum(lead, np.abs(signed) * side)
    _, cell = np.unique(code, return_inverse=True)
    colours = palette[rng.integers(0, len(palette), cell.max() + 1)] + rng.normal(0, 20, (cell.max() + 1, 3))
    glow = 1.15 - 0.55 * np.hypot(x - 0.5, y - 0.45)  # backlight, brightest near the centre
    image = colours[cell.reshape(side, side)] * glow[..., None]
    image[lead < 2.4] = (22, 20, 24)
    return _canvas_grain(np.clip(image, 0, 255), rng, strength=4.0)


def sunset_stripes(rng: np.random.Generator, side: int) -> np.ndarray:
    """Wavy bands of a blazing sky over a dark sea, with a striped low sun and its reflection."""
    sky = _hex("#2b1055", "#7b1fa2", "#d6246e", "#f25c54", "#f7a440", "#fde26c")
    y, x = _grid(side)
    horizon = 0.62
    wave = 0.025 * np.sin(x * 11 + rng.uniform(0, 6)) + 0.015 * np.sin(x * 23 + y * 9)
    band = np.clip(np.floor((y + wave) / horizon * len(sky)), 0, len(sky) - 1).astype(int)
    image = sky[band]
    sun = (np.hypot(x - 0.5, (y - horizon + 0.05) * 1.1) < 0.17) & (np.sin(y * 120) < 0.55 + 4 * (horizon - y))
    image[sun & (y < horizon)] = (255, 244, 200)
    sea = y >= horizon
    ripple = np.sin(x * 40 + np.sin(y * 160) * 3) * np.sin(y * 90)  # short horizontal glints
    glint = sea & (np.abs(x - 0.5) < 0.2 * (1.3 - (y - horizon))) & (ripple > 0.45)
    image[sea] = (28, 24, 70) + np.array([30, 10, 40]) * (1 - (y[sea, None] - horizon) / (1 - horizon))
    image[glint] = (250, 150, 80)
    return _canvas_grain(image, rng)
