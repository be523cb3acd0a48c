"""Synthetic face-detection data: LFW3D face crops pasted onto face-free backgrounds, in YOLO layout.

Box convention: an LFW3D crop (90×90, frontalized) is framed from the forehead to just below the mouth
and from cheek to cheek, with hair or background in its corners. Each crop is pasted through a feathered
ellipse inscribed in it, and its label is the tight box of the pixels where that mask is at least half
opaque: a square-ish box from brow to mouth, close to the dlib/VOC face boxes we evaluate on.

Every image comes from its own random generator seeded by ``(seed, index)``, so any subset can be made
by any process in any order with the same bytes, and files are written atomically: a rerun skips what
exists, and several processes may share one output folder.

    images/{train,val}/NNNNNN.jpg, labels/{train,val}/NNNNNN.txt ("0 cx cy w h", normalised), data.yaml
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from rich.progress import Progress

from models.detector.hard_cases import degrade_image, occlude_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RECIPE_FILE = "recipe.json"
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

# Checked by eye: the photos and paintings of ../shared/data/style-transfer that hold no face. Left out:
# portraits, figures, the bather of "the_resevoir_at_poitiers" and the small people on the stairs of "trial".
FACE_FREE_SHARED_BACKGROUNDS = (
    "content/chicago", "content/cornell", "content/flowers", "content/golden_gate", "content/modern",
    "content/newyork", "content/sailboat", "style/asheville", "style/brushstrokes", "style/en_campo_gris",
    "style/flower_of_life", "style/goeritz", "style/impronte_d_artista", "style/mondrian",
    "style/mondrian_cropped", "style/scene_de_rue",
)  # fmt: skip


@dataclass(frozen=True)
class CompositeRecipe:
    """How one composite is made; sides are fractions of the image side (22–330 px at 640)."""

    size: int = 640
    faces_per_image: tuple[int, int] = (1, 8)
    face_side: tuple[float, float] = (22 / 640, 330 / 640)
    empty_fraction: float = 0.08
    max_overlap: float = 0.2  # largest share of either box another face may cover
    max_rotation_deg: float = 10.0
    photo_fraction: float = 0.5  # share of backgrounds cut from photos, when photos are given
    feather: float = 0.08  # blur of the mask's edge, as a fraction of the face side
    brightness: float = 0.35  # factors drawn from 1 ± this
    contrast: float = 0.3
    saturation: float = 0.5
    blur_probability: float = 0.3
    grayscale_probability: float = 0.1
    jpeg_quality: tuple[int, int] = (75, 95)
    # Harder cases, off by default (``hard_cases.HARD_RECIPE`` turns them on); see ``models.detector.hard_cases``.
    crowd_probability: float = 0.0  # share of images with many small faces
    crowd_faces: tuple[int, int] = (10, 30)
    crowd_face_side: tuple[float, float] = (12 / 640, 48 / 640)
    occlusion_probability: float = 0.0  # per face: a band of background or a flat shape over part of it
    low_light_probability: float = 0.0  # per image: darkened, with sensor noise
    image_blur_probability: float = 0.0  # per image: defocus or motion-like blur of everything


def find_images(paths: Sequence[Path]) -> list[Path]:
    """Image files among ``paths`` (files, or folders searched recursively), sorted for determinism."""
    found: set[Path] = set()
    for path in paths:
        candidates = path.rglob("*") if path.is_dir() else [path]
        found.update(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(found)


def face_free_shared_backgrounds(style_transfer_dir: Path) -> list[Path]:
    """The hand-checked face-free images of ``../shared/data/style-transfer`` that exist there."""
    paths = [style_transfer_dir / f"{name}.jpg" for name in FACE_FREE_SHARED_BACKGROUNDS]
    return [path for path in paths if path.is_file()]


def split_faces_by_identity(faces: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Train and validation faces of disjoint people (the parent folder names the person).

    Falls back to all faces on both sides when one side would be empty (a tiny face set).
    """
    in_val = [zlib.crc32(face.parent.name.encode()) % 1000 < 1000 * val_fraction for face in faces]
    train = [face for face, val in zip(faces, in_val, strict=True) if not val]
    val = [face for face, val in zip(faces, in_val, strict=True) if val]
    return (train, val) if train and val else (faces, faces)


def face_mask(side: int, feather: float) -> Image.Image:
    """An ellipse inscribed in a ``side``-pixel square, its edge blurred so the 50% level stays on it."""
    scale = 4  # drawn large then reduced: a smooth edge even for a 20-pixel face
    mask = Image.new("L", (side * scale, side * scale), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side * scale - 1, side * scale - 1), fill=255)
    mask = mask.resize((side, side), Image.Resampling.BOX)
    return mask.filter(ImageFilter.GaussianBlur(feather * side)) if feather > 0 else mask


def jitter_face(face: Image.Image, rng: np.random.Generator, recipe: CompositeRecipe) -> Image.Image:
    """Brightness, contrast, saturation, per-channel gain, grey, flip and blur, each drawn at random."""
    for enhancer, strength in (
        (ImageEnhance.Brightness, recipe.brightness),
        (ImageEnhance.Contrast, recipe.contrast),
        (ImageEnhance.Color, recipe.saturation),
    ):
        face = enhancer(face).enhance(1 + rng.uniform(-strength, strength))
    gains = 1 + rng.uniform(-0.1, 0.1, size=3) * (recipe.saturation > 0)  # a mild colour cast
    face = Image.fromarray(np.clip(np.asarray(face, dtype=np.float32) * gains, 0, 255).astype(np.uint8))
    if rng.random() < recipe.grayscale_probability:
        face = ImageOps.grayscale(face).convert("RGB")
    if rng.random() < 0.5:
        face = ImageOps.mirror(face)
    if rng.random() < recipe.blur_probability:
        face = face.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5) * face.width / 64))
    return face


def prepared_face(path: Path, side: int, rng: np.random.Generator, recipe: CompositeRecipe) -> tuple[Image.Image, Box]:
    """The face resized to ``side``, jittered and rotated, as RGBA, with the box of its half-opaque mask."""
    face = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
    face = jitter_face(face, rng, recipe)
    face.putalpha(face_mask(side, recipe.feather))
    angle = rng.uniform(-recipe.max_rotation_deg, recipe.max_rotation_deg)
    face = face.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    ys, xs = np.nonzero(np.asarray(face.getchannel("A")) >= 128)
    return face, (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def overlap_share(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area: how much of either box the other covers at most."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller


def place_box(local: Box, size: int, taken: list[Box], rng: np.random.Generator, max_overlap: float) -> Box | None:
    """A random position for a face box, at most a quarter outside the image, overlapping little; or None."""
    width, height = local[2] - local[0], local[3] - local[1]
    for _ in range(30):
        x = rng.uniform(-0.25 * width, size - 0.75 * width)
        y = rng.uniform(-0.25 * height, size - 0.75 * height)
        box = (x, y, x + width, y + height)
        if all(overlap_share(box, other) <= max_overlap for other in taken):
            return box
    return None


def value_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) smooth noise in [0, 1]: random grids of several scales, upsampled and summed."""
    total = np.zeros((size, size), dtype=np.float32)
    for cells, weight in ((3, 1.0), (9, 0.5), (27, 0.25), (size // 4, 0.12)):
        grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
        total += weight * np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def procedural_background(rng: np.random.Generator, size: int) -> Image.Image:
    """Coloured noise, a grating over noise, or random shapes over noise: textures that hold no face."""
    colours = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    kind, level = int(rng.integers(3)), value_noise(rng, size)
    if kind == 1:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
        angle, frequency = rng.uniform(0, math.pi), rng.uniform(2, 40)
        grating = 0.5 + 0.5 * np.sin(2 * math.pi * frequency * (xs * math.cos(angle) + ys * math.sin(angle)))
        level = 0.6 * grating + 0.4 * level
    pixels = colours[0] + level[..., None] * (colours[1] - colours[0])  # (size, size, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(5, 40)) if kind == 2 else 0):
        (x1, x2), (y1, y2) = (sorted(rng.uniform(-0.1, 1.1, 2) * size) for _ in range(2))
        fill, shape = tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(3))
        if shape == 0:
            draw.line((x1, y1, x2, y2), fill=fill, width=int(rng.integers(1, 12)))
        else:
            (draw.rectangle if shape == 1 else draw.ellipse)((x1, y1, x2, y2), fill=fill)
    return image


@lru_cache(maxsize=64)
def decoded_photo(path: Path, longest: int) -> Image.Image:
    """A background photo decoded once per process, shrunk so its longest side is at most ``longest``."""
    photo = Image.open(path).convert("RGB")
    photo.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return photo


def photo_background(path: Path, rng: np.random.Generator, size: int) -> Image.Image:
    """A random square crop (35–100% of the short side) of a photo, maybe mirrored, resized to ``size``."""
    photo = decoded_photo(path, 2 * size)
    side = int(min(photo.size) * rng.uniform(0.35, 1.0))
    x, y = int(rng.integers(0, photo.width - side + 1)), int(rng.integers(0, photo.height - side + 1))
    crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop


def composite(
    index: int, seed: int, faces: Sequence[Path], photos: Sequence[Path], recipe: CompositeRecipe
) -> tuple[Image.Image, list[Box]]:
    """Image ``index`` of the data set and its clipped face boxes; the same arguments give the same image."""
    rng = np.random.default_rng([seed, index])
    size = recipe.size
    if photos and rng.random() < recipe.photo_fraction:
        canvas = photo_background(photos[int(rng.integers(len(photos)))], rng, size)
    else:
        canvas = procedural_background(rng, size)
    empty = rng.random() < recipe.empty_fraction
    crowd = recipe.crowd_probability > 0 and rng.random() < recipe.crowd_probability
    per_image, face_side = (
        (recipe.crowd_faces, recipe.crowd_face_side) if crowd else (recipe.faces_per_image, recipe.face_side)
    )
    count = 0 if empty or not faces else int(rng.integers(*per_image, endpoint=True))
    low, high = (math.log(fraction * size) for fraction in face_side)
    boxes: list[Box] = []
    for _ in range(count):
        side = max(8, round(math.exp(rng.uniform(low, high))))  # log-uniform: as many small faces as large
        face, local = prepared_face(faces[int(rng.integers(len(faces)))], side, rng, recipe)
        box = place_box(local, size, boxes, rng, recipe.max_overlap)
        if box is not None:
            x, y = round(box[0] - local[0]), round(box[1] - local[1])  # whole pixels: the box stays exact
            canvas.paste(face, (x, y), face)
            boxes.append((x + local[0], y + local[1], x + local[2], y + local[3]))
            if recipe.occlusion_probability and rng.random() < recipe.occlusion_probability:
                occlude_face(canvas, boxes[-1], rng)
    canvas = degrade_image(canvas, rng, recipe.image_blur_probability, recipe.low_light_probability)
    return canvas, [clip_box(box, size) for box in boxes]


def clip_box(box: Box, size: int) -> Box:
    x1, y1, x2, y2 = (min(max(value, 0.0), float(size)) for value in box)
    return (x1, y1, x2, y2)


def yolo_label(boxes: Sequence[Box], size: int) -> str:
    """One ``0 cx cy w h`` line per box, normalised by the image side."""
    rows = [((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes]
    return "".join("0 " + " ".join(f"{value / size:.6f}" for value in row) + "\n" for row in rows)


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary name then rename, so a reader or a racing process never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


@dataclass(frozen=True)
class SynthesisPlan:
    """Everything one worker needs to make any example of the data set."""

    root: Path
    seed: int
    faces: dict[str, list[Path]]  # per split
    photos: list[Path]
    recipe: CompositeRecipe

    def make(self, jobs: list[tuple[int, str]]) -> int:
        """Make and write the examples ``(index, split)`` not yet on disk; returns how many were asked for."""
        for index, split in jobs:
            image_path = self.root / "images" / split / f"{index:06d}.jpg"
            if image_path.is_file():
                continue
            image, boxes = composite(index, self.seed, self.faces[split], self.photos, self.recipe)
            low, high = self.recipe.jpeg_quality
            quality = int(np.random.default_rng([self.seed, index, 1]).integers(low, high + 1))
            buffer = BytesIO()
            image.save(buffer, format="JPEG", quality=quality)
            label = yolo_label(boxes, image.width).encode()
            write_atomically(self.root / "labels" / split / f"{index:06d}.txt", label)
            write_atomically(image_path, buffer.getvalue())  # the image last: it marks the example done
        return len(jobs)


def make_all(plan: SynthesisPlan, jobs: list[tuple[int, str]], workers: int, progress: bool) -> None:
    """Run ``plan.make`` over chunks of ``jobs``, in this process or in ``workers`` processes."""
    chunks = [jobs[start : start + 32] for start in range(0, len(jobs), 32)]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("synthesizing", total=len(jobs))
        if workers <= 1:
            for chunk in chunks:
                bar.advance(task, plan.make(chunk))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in as_completed([pool.submit(plan.make, chunk) for chunk in chunks]):
                bar.advance(task, done.result())


def check_recipe_file(root: Path, record: dict[str, Any]) -> None:
    """Record the recipe in ``root``; refuse to add to a folder made with another one."""
    path = root / RECIPE_FILE
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    if path.is_file() and json.loads(path.read_text()) != json.loads(text):
        raise FileExistsError(f"{root} holds a data set made with another recipe; choose another folder")
    write_atomically(path, text.encode())


def write_data_yaml(root: Path) -> Path:
    """The ultralytics data file: absolute root, one class."""
    path = root / "data.yaml"
    text = f"path: {json.dumps(str(root.resolve()))}\ntrain: images/train\nval: images/val\nnames:\n  0: face\n"
    write_atomically(path, text.encode())
    return path


def relative_paths(paths: Sequence[Path], root: Path | None) -> list[str]:
    """Paths relative to ``root`` (the data root they came from), so a recipe means the same on any machine."""
    if root is None:
        return [p.name for p in paths]
    return [os.path.relpath(p.resolve(), root.resolve()) for p in paths]


def synthesize_dataset(
    out_dir: Path,
    face_dir: Path | Sequence[Path],
    backgrounds: Sequence[Path] = (),
    count: int = 6000,
    recipe: CompositeRecipe | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    data_root: Path | None = None,
) -> Path:
    """Write ``count`` composites to ``out_dir``, the first ``val_fraction`` for validation; return data.yaml.

    ``backgrounds`` are face-free photos (files or folders); procedural textures are always used too.
    Validation images use faces of people absent from the training images. The recipe records paths
    relative to ``data_root`` (default: the folder that holds all the inputs).
    """
    recipe = recipe or CompositeRecipe()
    assert count > 0 and 0 <= val_fraction < 1, f"count {count} must be > 0, val_fraction {val_fraction} in [0, 1)"
    face_dirs = [face_dir] if isinstance(face_dir, Path) else list(face_dir)
    faces, photos = find_images(face_dirs), find_images(backgrounds)
    root = data_root or Path(os.path.commonpath([p.resolve() for p in [*face_dirs, *photos]]))
    assert faces, f"no face images under {face_dir}"
    train_faces, val_faces = split_faces_by_identity(faces, val_fraction)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_recipe_file(out_dir, {
        "recipe": dataclasses.asdict(recipe), "count": count, "val_fraction": val_fraction, "seed": seed,
        "faces": ", ".join(relative_paths(face_dirs, root)),
        "n_faces": {"train": len(train_faces), "val": len(val_faces)},
        "backgrounds": relative_paths(photos, root), "data_root": root.name,
    })  # fmt: skip
    for folder in ("images/train", "images/val", "labels/train", "labels/val"):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    n_val = round(count * val_fraction)
    jobs = [(index, "val" if index < n_val else "train") for index in range(count)]
    plan = SynthesisPlan(out_dir, seed, {"train": train_faces, "val": val_faces}, photos, recipe)
    make_all(plan, jobs, workers, progress)
    return write_data_yaml(out_dir)
