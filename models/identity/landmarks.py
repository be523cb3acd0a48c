"""Our port of dlib's ``shape_predictor``: a cascade of regression-tree forests over pixel differences, in numpy.

Per cascade: the feature pixels hang off landmarks of the current shape (``anchor_idx``) at offsets
(``deltas``) given in mean-shape units and turned by the similarity between the mean and the current shape;
each tree compares the intensities of two feature pixels per split and its leaf adds a shape delta.
Shapes live in the box's unit square (0, 0) = (left, top), (1, 1) = (right, bottom), dlib's
``unnormalizing_tform``. Faces of one image run together, vectorised over faces and trees.
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


def intensity(image: np.ndarray) -> np.ndarray:
    """dlib's ``get_pixel_intensity`` of an RGB uint8 image: the integer mean of the channels, as float32."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return (image.astype(np.uint16).sum(-1) // 3).astype(np.float32)


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
        self.tree_nodes = np.arange(trees) * splits
        self.tree_leaves = np.arange(trees) * (splits + 1)

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
        rows = np.arange(count)[:, None] * self.deltas.shape[1]  # each face's offset into the flat pixel values
        for cascade in range(len(self.thresholds)):
            turn, _ = similarity_matrices(self.initial[None], shape)  # (N, 2, 2)
            offsets = np.einsum("nij,fj->nfi", turn, self.deltas[cascade])  # (N, F, 2)
            unit = offsets + shape[:, self.anchor_idx[cascade]]
            pixels = np.floor(unit * size + origin + 0.5).astype(np.intp)  # dlib rounds to the nearest pixel
            x, y = pixels[..., 0], pixels[..., 1]
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            sampled = intensity(image[np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)])  # only the F pixels
            values = np.where(inside, sampled, np.float32(0.0)).ravel()  # (N * F,)
            node = np.zeros((count, len(self.tree_nodes)), np.intp)
            for _ in range(self.depth):
                flat = self.tree_nodes + node  # (N, T)
                difference = values.take(rows + self.first[cascade].take(flat)) - values.take(
                    rows + self.second[cascade].take(flat)
                )
                node = 2 * node + 1 + (difference <= self.thresholds[cascade].take(flat))  # left child if above
            leaves = self.leaves[cascade].take(self.tree_leaves + node - self.splits, axis=0)  # (N, T, P * 2)
            shape = shape + leaves.sum(1, dtype=np.float32).reshape(shape.shape)
        return (shape * size + origin).astype(np.float32)
