"""The numpy twin of ``models.style.adain`` for the ONNX backend: AdaIN statistics, style interpolation, CORAL.

Same formulas and epsilons as the torch version (tests hold the two together), in float32 like it.
"""

from __future__ import annotations

import numpy as np


def calc_mean_std(feat: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample, per-channel mean and standard deviation of a (N, C, H, W) feature map."""
    assert feat.ndim == 4, f"expected (N, C, H, W) features, got shape {feat.shape}"
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)  # (N, C, H*W)
    # eps keeps the std of a constant channel (a flat image region) away from zero
    std = np.sqrt(flat.var(axis=2) + eps).reshape(n, c, 1, 1)
    mean = flat.mean(axis=2).reshape(n, c, 1, 1)
    return mean, std


def adaptive_instance_normalization(content_feat: np.ndarray, style_feat: np.ndarray) -> np.ndarray:
    """AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y), per sample and channel (eq. 8 of the paper)."""
    assert content_feat.shape[:2] == style_feat.shape[:2], (
        f"content {content_feat.shape} and style {style_feat.shape} differ in batch or channels"
    )
    style_mean, style_std = calc_mean_std(style_feat)  # (N, C, 1, 1) each
    content_mean, content_std = calc_mean_std(content_feat)
    normalized = (content_feat - content_mean) / content_std  # (N, C, H, W)
    return normalized * style_std + style_mean


def interpolate_styles(content_feat: np.ndarray, style_feats: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of the AdaIN targets of one content for several styles; weights are normalised to 1."""
    assert len(style_feats) == len(weights) > 0, "need one weight per style and at least one style"
    assert all(w >= 0 for w in weights) and sum(weights) > 0, f"weights must be >= 0, not all 0: {weights}"
    total = float(sum(weights))
    target = np.zeros_like(content_feat)  # (1, C, H, W)
    for style_feat, weight in zip(style_feats, weights, strict=True):
        target = target + (weight / total) * adaptive_instance_normalization(content_feat, style_feat)
    return target


def _flat_mean_std(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = image.reshape(image.shape[0], -1)  # (C, H*W)
    mean = flat.mean(axis=1, keepdims=True)  # (C, 1)
    std = flat.std(axis=1, ddof=1, keepdims=True) + 1e-5
    return flat, mean, std


def _symmetric_sqrt(matrix: np.ndarray, inverse: bool = False) -> np.ndarray:
    # eigh is exact and stable for the symmetric positive definite matrices coral builds
    values, vectors = np.linalg.eigh(matrix)
    roots = np.sqrt(np.maximum(values, 1e-8))
    roots = 1.0 / roots if inverse else roots
    return (vectors * roots) @ vectors.T  # V · diag(roots) · Vᵀ


def _correlation(normalized: np.ndarray) -> np.ndarray:
    # the small ridge keeps a flat (rank-deficient) image invertible
    n = normalized.shape[1]
    eye = np.eye(normalized.shape[0], dtype=normalized.dtype)
    return normalized @ normalized.T / max(n - 1, 1) + 1e-5 * eye  # (C, C)


def coral(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """CORAL colour transfer: ``source`` (C, H, W) recoloured to ``target``'s channel mean and covariance."""
    assert source.ndim == 3 and target.ndim == 3 and source.shape[0] == target.shape[0], (
        f"expected (C, H, W) images with equal C, got {source.shape} and {target.shape}"
    )
    source_flat, source_mean, source_std = _flat_mean_std(source.astype(np.float32))
    target_flat, target_mean, target_std = _flat_mean_std(target.astype(np.float32))
    source_norm = (source_flat - source_mean) / source_std  # (C, Hs*Ws)
    target_norm = (target_flat - target_mean) / target_std  # (C, Ht*Wt)
    whiten = _symmetric_sqrt(_correlation(source_norm), inverse=True)  # (C, C)
    colour = _symmetric_sqrt(_correlation(target_norm))  # (C, C)
    transferred = colour @ whiten @ source_norm  # (C, Hs*Ws), correlation of the target
    return (transferred * target_std + target_mean).reshape(source.shape).astype(source.dtype)


def mix_statistics(
    style_stats: list[tuple[np.ndarray, np.ndarray]], weights: list[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``weights``-average (normalised to 1) of several styles' (mean, std) statistics."""
    assert len(style_stats) == len(weights) > 0, "need one weight per style and at least one style"
    assert all(w >= 0 for w in weights) and sum(weights) > 0, f"weights must be >= 0, not all 0: {weights}"
    total = float(sum(weights))
    mean = sum((w / total) * m for (m, _), w in zip(style_stats, weights, strict=True))
    std = sum((w / total) * s for (_, s), w in zip(style_stats, weights, strict=True))
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def interpolate_statistics(
    content_feat: np.ndarray, style_stats: list[tuple[np.ndarray, np.ndarray]], weights: list[float]
) -> np.ndarray:
    """``interpolate_styles`` from each style's (mean, std) instead of its features (AdaIN is linear in them)."""
    mean, std = mix_statistics(style_stats, weights)
    content_mean, content_std = calc_mean_std(content_feat)  # (1, C, 1, 1) each
    normalized = (content_feat - content_mean) / content_std  # (1, C, H, W)
    return (normalized * std + mean).astype(content_feat.dtype)
