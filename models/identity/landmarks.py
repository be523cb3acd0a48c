"""Our port of dlib's ``shape_predictor``: a cascade of regression-tree forests over pixel differences, in numpy.

Per cascade: the feature pixels hang off landmarks of the current shape (``anchor_idx``) at offsets
(``deltas``) given in mean-shape units and turned by the similarity between the mean and the current shape;
each tree compares the intensities of two feature pixels per split and its leaf adds a shape delta.
Shapes live in the box's unit square (0, 0) = (left, top), (1, 1) = (right, bottom), dlib's
``unnormalizing_tform``. Faces of one image run together, vectorised over faces and trees.

Each cascade compares every split of every tree at once (500 trees x 15 splits: one vector operation each) and
turns each tree's outcomes into its leaf through one table of every outcome pattern (``leaf_table``), instead
of walking the trees level by level; the feature offsets are turned by the similarity's two numbers, not an
``einsum``, and pixels and features are gathered with ``take``. For the one or two faces of a request numpy's
per-call cost, not the arithmetic, is the time: a pass over one face took 3.3 ms as a level-by-level walk and
takes 1.66 ms so, with the same landmarks to the bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.identity.dlib_format import check_shape_predictor

ARRAY_KEYS = ("initial_shape", "split_idx", "thresholds", "leaves", "anchor_idx", "deltas")


def similarity_matrices(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity transforms (Umeyama, no reflection) from ``source`` to ``target`` point sets.

    ``source`` and ``target`` are (..., P, 2); returns the linear parts (..., 2, 2) and translations (..., 2):
    ``target ≈ source @ M.T + t``. In 2D it is the complex least-squares fit, as dlib's
    ``find_similarity_transform`` computes it.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(-2, keepdims=True), target.mean(-2, keepdims=True)
    s, t = source - source_mean, target - target_mean
    norm = (s**2).sum((-1, -2))
    norm = np.where(norm > 0, norm, 1.0)
    a = ((s * t).sum((-1, -2))) / norm  # real part: s.x t.x + s.y t.y
    b = ((s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0]).sum(-1)) / norm  # imaginary part
    matrix = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)
    translation = target_mean[..., 0, :] - np.einsum("...ij,...j->...i", matrix, source_mean[..., 0, :])
    return matrix, translation


def leaf_table(depth: int) -> np.ndarray:
    """For every pattern of a complete tree's split outcomes (bit n: split n sent the walk right), the leaf reached.

    Splits are numbered breadth first (children of n: 2n + 1, 2n + 2), as dlib stores them; a walk reads only
    ``depth`` of the bits, so patterns that differ elsewhere share a leaf.
    """
    splits = 2**depth - 1
    patterns = np.arange(2**splits)
    node = np.zeros_like(patterns)
    for _ in range(depth):
        node = 2 * node + 1 + ((patterns >> node) & 1)
    return (node - splits).astype(np.intp)


def intensity(image: np.ndarray) -> np.ndarray:
    """dlib's ``get_pixel_intensity`` of an RGB uint8 image: the integer mean of the channels, as float32."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return (image.sum(-1, dtype=np.uint16) // 3).astype(np.float32)


class ShapePredictor:
    """Landmarks for boxes: ``predict(image, rects) -> (N, P, 2)`` image-pixel (x, y) points."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        check_shape_predictor(arrays, "shape predictor")
        self.initial = arrays["initial_shape"].astype(np.float32)
        self.anchor_idx = arrays["anchor_idx"].astype(np.intp)
        self.deltas = arrays["deltas"].astype(np.float32)
        cascades, trees, splits = arrays["thresholds"].shape
        self.splits = splits
        self.depth = int(np.log2(splits + 1))
        # flat per cascade, so that every lookup is one np.take: node n of tree t is t * splits + n
        self.first = arrays["split_idx"][..., 0].reshape(cascades, trees * splits).astype(np.intp)
        self.second = arrays["split_idx"][..., 1].reshape(cascades, trees * splits).astype(np.intp)
        self.thresholds = arrays["thresholds"].reshape(cascades, trees * splits).astype(np.float32)
        self.leaves = arrays["leaves"].reshape(cascades, trees * (splits + 1), -1).astype(np.float32)
        self.tree_leaves = np.arange(trees) * (splits + 1)
        self.leaf_of = leaf_table(self.depth)
        self.bit = (1 << np.arange(splits)).astype(np.intp)  # a tree's outcomes as one integer
        # the source side of the mean-shape -> current-shape similarity, the same in every cascade
        initial = self.initial.astype(np.float64)
        self.initial_centred = initial - initial.mean(0)
        self.initial_norm = float((self.initial_centred**2).sum()) or 1.0

    def _rotation(self, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The similarity from the mean shape to each of ``shape`` (N, P, 2) as [[a, -b], [b, a]]: a and b, (N, 1)."""
        target = shape.astype(np.float64)
        t = target - target.mean(1, keepdims=True)
        s = self.initial_centred
        a = (s * t).sum((1, 2)) / self.initial_norm
        b = (s[:, 0] * t[..., 1] - s[:, 1] * t[..., 0]).sum(1) / self.initial_norm
        return a[:, None], b[:, None]

    @classmethod
    def from_safetensors(cls, path: Path) -> ShapePredictor:
        from safetensors.numpy import load_file

        return cls(load_file(str(path)))

    @property
    def num_points(self) -> int:
        return int(self.initial.shape[0])

    def predict(self, image: np.ndarray, rects: np.ndarray) -> np.ndarray:
        """``rects`` (N, 4) as dlib's (left, top, right, bottom), floats allowed; image (H, W, 3) uint8 or (H, W)."""
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        count, (height, width) = len(rects), image.shape[:2]
        origin, size = rects[:, None, :2], (rects[:, 2:] - rects[:, :2])[:, None, :]  # (N, 1, 2)
        shape = np.repeat(self.initial[None], count, 0)  # (N, P, 2) in box units
        pixels = image.reshape(height * width, *image.shape[2:])  # a view: row-major pixels, (H * W[, 3])
        for cascade in range(len(self.thresholds)):
            a, b = self._rotation(shape)  # (N, 1) each
            dx, dy = self.deltas[cascade, :, 0], self.deltas[cascade, :, 1]  # (F,) in mean-shape units, turned:
            anchors = shape.take(self.anchor_idx[cascade], axis=1)  # (N, F, 2)
            unit_x = (a * dx + -b * dy) + anchors[..., 0]
            unit_y = (b * dx + a * dy) + anchors[..., 1]
            x = np.floor(unit_x * size[..., 0] + origin[..., 0] + 0.5).astype(np.intp)  # dlib rounds to the
            y = np.floor(unit_y * size[..., 1] + origin[..., 1] + 0.5).astype(np.intp)  # nearest pixel
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            flat = np.clip(y, 0, height - 1) * width + np.clip(x, 0, width - 1)
            sampled = intensity(pixels.take(flat, axis=0))  # only the F pixels (take: faster than fancy indexing)
            values = np.where(inside, sampled, np.float32(0.0))  # (N, F)
            difference = values.take(self.first[cascade], axis=1) - values.take(self.second[cascade], axis=1)
            right = (difference <= self.thresholds[cascade]).reshape(count, -1, self.splits)  # right child if not above
            node = self.leaf_of[right @ self.bit]  # (N, T): each tree's leaf
            leaves = self.leaves[cascade].take(self.tree_leaves + node, axis=0)  # (N, T, P * 2)
            shape = shape + leaves.sum(1, dtype=np.float32).reshape(shape.shape)
        return (shape * size + origin).astype(np.float32)
