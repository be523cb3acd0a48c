"""Large photos read as overlapping tiles plus the whole view, merged by NMS; for every detector.

A 1,600 px crowd photo shrinks to the network's input side and its 20-pixel faces to 8: too small to
find. ``tile="auto"`` also reads a photo more than ``tile_above`` (default ``TILE_ABOVE``) times the
input side as a grid of overlapping tiles (at most ``MAX_TILES``, which bounds the latency at
``1 + MAX_TILES`` forwards), and ``tile="on"`` any photo larger than the input side. A tile's box that
touches a border shared with another tile is dropped: the face it cuts shows whole in the neighbouring
tile (the overlap) or in the whole view. The teacher that labels training photos uses the same grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from models.detector.boxes import greedy_nms
from models.detector.types import TILE_ABOVE, Detection, DetectRequest

TILE_OVERLAP = 0.25
MAX_TILES = 4
EDGE_PX = 2.0  # a tile box this close to an inner tile border is cut by it
JPEG_REDUCTIONS = (8, 4, 2)  # the smaller scales a JPEG decodes at straight from its DCT blocks
GRID_TOLERANCE = 0.01  # lossless_reduction: a reduced photo's tiles sit where the whole photo's do, to 1 %

Tile = tuple[int, int, int, int]  # left, top, right, bottom
Predict = Callable[[list[DetectRequest]], list[list[Detection]]]


def tiles(width: int, height: int, side: int, above: float = TILE_ABOVE, max_tiles: int = MAX_TILES) -> list[Tile]:
    """Overlapping tiles of about ``side`` pixels (fewer and larger beyond ``max_tiles``), or none."""
    if max(width, height) <= above * side:
        return []
    columns, rows = (max(1, round(extent / side)) for extent in (width, height))
    while columns * rows > max_tiles:  # a bound on latency: shrink the longer grid dimension first
        columns, rows = (columns - 1, rows) if columns >= rows else (columns, rows - 1)
    tile_w = min(width, width / columns / (1 - TILE_OVERLAP))
    tile_h = min(height, height / rows / (1 - TILE_OVERLAP))
    result = []
    for row in range(rows):
        for column in range(columns):
            left = min(max(0.0, column * width / columns - TILE_OVERLAP / 2 * tile_w), width - tile_w)
            top = min(max(0.0, row * height / rows - TILE_OVERLAP / 2 * tile_h), height - tile_h)
            result.append((round(left), round(top), round(left + tile_w), round(top + tile_h)))
    return result if len(result) > 1 else []


def request_tiles(request: DetectRequest, side: int) -> list[Tile]:
    """The tiles a request is read as, for a network whose input side is ``side`` pixels."""
    return tile_grid(request.image.width, request.image.height, side, request.tile, request.tile_above)


def tile_grid(width: int, height: int, side: int, tile: str, above: float = TILE_ABOVE) -> list[Tile]:
    """The tiles a ``width`` x ``height`` photo is read as under the ``tile`` option (off, auto or on)."""
    if tile == "off":
        return []
    return tiles(width, height, side, above if tile == "auto" else 1.0)


def lossless_reduction(width: int, height: int, side: int, tile: str, above: float = TILE_ABOVE) -> int:
    """The largest of ``JPEG_REDUCTIONS`` (else 1) a photo may be decoded smaller by, losing nothing the network sees.

    Every view (each tile, else the whole photo) keeps at least ``side`` pixels on its shorter side, so it is
    still shrunk to the network's input, and the tiles are the ones the whole photo gets (the same places as
    shares of its sides). A 4032×3024 phone photo on a 640 px network decodes at half its side (2×2 tiles of
    1344×1008), several times faster than whole.
    """
    grid = tile_grid(width, height, side, tile, above)
    for factor in JPEG_REDUCTIONS:
        reduced_w, reduced_h = -(-width // factor), -(-height // factor)
        reduced = tile_grid(reduced_w, reduced_h, side, tile, above)
        views = reduced or [(0, 0, reduced_w, reduced_h)]
        if min(min(right - left, bottom - top) for left, top, right, bottom in views) < side:
            continue
        whole, smaller = _shares(grid, width, height), _shares(reduced, reduced_w, reduced_h)
        if len(whole) == len(smaller) and np.allclose(whole, smaller, rtol=0, atol=GRID_TOLERANCE):
            return factor
    return 1


def _shares(grid: list[Tile], width: int, height: int) -> np.ndarray:
    """Each tile's left, top, right and bottom as shares of the photo's sides: (n, 4)."""
    return np.array(grid, dtype=np.float64).reshape(-1, 4) / [width, height, width, height]


def cut_by_inner_border(box: tuple[float, ...], tile: Tile, width: int, height: int) -> bool:
    """Whether a box (in photo pixels) touches a border of ``tile`` that is not the photo's own."""
    x1, y1, x2, y2 = box
    left, top, right, bottom = tile
    return (
        (left > 0 and x1 - left < EDGE_PX)
        or (top > 0 and y1 - top < EDGE_PX)
        or (right < width and right - x2 < EDGE_PX)
        or (bottom < height and bottom - y2 < EDGE_PX)
    )


def merge_detections(found: list[Detection], iou: float, max_det: int) -> list[Detection]:
    """NMS over pooled detections (per label), best score first, at most ``max_det``."""
    kept: list[Detection] = []
    for label in sorted({d.label for d in found}):
        same = sorted((d for d in found if d.label == label), key=lambda d: -d.score)
        boxes = np.array([d.box for d in same], dtype=np.float32).reshape(-1, 4)
        kept += [same[i] for i in greedy_nms(boxes, iou, max_det)]
    return sorted(kept, key=lambda d: -d.score)[:max_det]


def detect_tiled(
    batch: list[DetectRequest], side: Callable[[DetectRequest], int], predict: Predict
) -> list[list[Detection]]:
    """``predict`` over every request's whole view and tiles in one call, then each request's views merged.

    ``side(request)`` is the network input side for the request. Requests without tiles pass through as
    they are; tiled views keep every box (``min_size`` applies after the merge, to whole faces).
    """
    views: list[DetectRequest] = []
    plans: list[tuple[int, list[Tile]]] = []  # per request: its first view's index and its tiles
    for request in batch:
        parts = request_tiles(request, side(request))
        plans.append((len(views), parts))
        if not parts:
            views.append(request)
            continue
        views.append(dataclasses.replace(request, min_size=0.0))
        views += [dataclasses.replace(request, image=request.image.crop(t), min_size=0.0) for t in parts]
    found = predict(views)
    return [
        merge_views(request, found[start : start + 1 + len(parts)], parts) if parts else found[start]
        for request, (start, parts) in zip(batch, plans, strict=True)
    ]


def merge_views(request: DetectRequest, found: list[list[Detection]], parts: list[Tile]) -> list[Detection]:
    """The whole view's detections and each tile's (shifted to photo pixels, border-cut ones dropped), merged."""
    width, height = request.image.size
    pooled = list(found[0])
    for tile, detections in zip(parts, found[1:], strict=True):
        left, top = tile[0], tile[1]
        for d in detections:
            box = (d.box[0] + left, d.box[1] + top, d.box[2] + left, d.box[3] + top)
            if not cut_by_inner_border(box, tile, width, height):
                pooled.append(Detection(box=box, score=d.score, label=d.label))
    return at_least(merge_detections(pooled, request.iou, request.max_det), request.min_size)


def at_least(found: list[Detection], min_size: float) -> list[Detection]:
    """The detections whose box's shorter side is at least ``min_size`` pixels (applied to merged, whole faces)."""
    return [d for d in found if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min_size]
