"""Fixtures for the detector tests: synthetic images and one random-weight starter artifact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from models.artifact import Manifest
from models.detector.starter import make_untrained_detector

Box = tuple[int, int, int, int]
ImageWithRectangle = Callable[[int, int, Box], Image.Image]


def draw_white_rectangle(width: int, height: int, box: Box) -> Image.Image:
    """A black RGB image with a filled white rectangle covering pixels x1 <= x < x2, y1 <= y < y2."""
    image = Image.new("RGB", (width, height), (0, 0, 0))
    x1, y1, x2, y2 = box
    ImageDraw.Draw(image).rectangle((x1, y1, x2 - 1, y2 - 1), fill=(255, 255, 255))
    return image


@pytest.fixture
def image_with_rectangle() -> ImageWithRectangle:
    return draw_white_rectangle


@pytest.fixture(scope="session")
def starter_detector_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    folder = tmp_path_factory.mktemp("face-detector") / "v0"
    return folder, make_untrained_detector(folder)
