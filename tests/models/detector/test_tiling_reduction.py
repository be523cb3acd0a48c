"""tiling.lossless_reduction: how much smaller a JPEG may decode for a detector, losing nothing it sees."""

from __future__ import annotations

import pytest

from models.detector.tiling import lossless_reduction, tile_grid


@pytest.mark.parametrize(
    ("width", "height", "tile", "factor"),
    [
        (4032, 3024, "auto", 2),  # a phone photo: 2×2 tiles of 1344×1008 at half scale; a quarter changes the grid
        (4032, 3024, "off", 4),  # the whole view alone: 1008×756 still shrinks to 640
        (6000, 4000, "auto", 4),
        (1920, 1080, "auto", 1),  # at half scale (960 px) it would not be tiled at all
        (800, 600, "auto", 1),
        (512, 512, "auto", 1),
    ],
)
def test_the_reduction_keeps_every_view_above_the_input_and_the_same_tiles(
    width: int, height: int, tile: str, factor: int
) -> None:
    assert lossless_reduction(width, height, 640, tile) == factor
    if factor > 1:
        reduced = tile_grid(-(-width // factor), -(-height // factor), 640, tile)
        whole = tile_grid(width, height, 640, tile)
        assert len(reduced) == len(whole)
        assert all(
            min(r - left, b - t) >= 640 for left, t, r, b in reduced or [(0, 0, width // factor, height // factor)]
        )
