"""Adaptive instance normalisation (Huang & Belongie 2017) as pure tensor math.

Follows naoto0804/pytorch-AdaIN's ``function.py``: ``calc_mean_std``, ``adaptive_instance_normalization``
and ``coral`` (the colour transfer its ``--preserve_color`` option applies to the style image), plus
the weighted interpolation of several styles from its ``test.py``.
"""

from __future__ import annotations

import torch


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation of a (N, C, H, W) feature map."""
    assert feat.dim() == 4, f"expected (N, C, H, W) features, got shape {tuple(feat.shape)}"
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)  # (N, C, H*W)
    # eps keeps the std of a constant channel (a flat image region) away from zero
    std = (flat.var(dim=2, unbiased=False) + eps).sqrt().view(n, c, 1, 1)
    mean = flat.mean(dim=2).view(n, c, 1, 1)
    return mean, std


def adaptive_instance_normalization(content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    """AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y), per sample and channel (eq. 8 of the paper)."""
    assert content_feat.shape[:2] == style_feat.shape[:2], (
        f"content {tuple(content_feat.shape)} and style {tuple(style_feat.shape)} differ in batch or channels"
    )
    style_mean, style_std = calc_mean_std(style_feat)  # (N, C, 1, 1) each
    content_mean, content_std = calc_mean_std(content_feat)
    normalized = (content_feat - content_mean) / content_std  # (N, C, H, W)
    return normalized * style_std + style_mean


def interpolate_styles(
    content_feat: torch.Tensor, style_feats: list[torch.Tensor], weights: list[float]
) -> torch.Tensor:
    """Weighted sum of the AdaIN targets of one content for several styles; weights are normalised to 1.

    Style features may have different spatial sizes: AdaIN only uses their channel statistics.
    """
    assert len(style_feats) == len(weights) > 0, "need one weight per style and at least one style"
    assert all(w >= 0 for w in weights) and sum(weights) > 0, f"weights must be >= 0, not all 0: {weights}"
    total = float(sum(weights))
    target = torch.zeros_like(content_feat)  # (1, C, H, W)
    for style_feat, weight in zip(style_feats, weights, strict=True):
        target = target + (weight / total) * adaptive_instance_normalization(content_feat, style_feat)
    return target


def _flat_mean_std(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    flat = image.reshape(image.shape[0], -1)  # (C, H*W)
    mean = flat.mean(dim=1, keepdim=True)  # (C, 1)
    std = flat.std(dim=1, keepdim=True) + 1e-5
    return flat, mean, std


def _symmetric_sqrt(matrix: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    # eigh is exact and stable for the symmetric positive definite matrices coral builds
    values, vectors = torch.linalg.eigh(matrix)
    roots = values.clamp_min(1e-8).sqrt()
    roots = 1.0 / roots if inverse else roots
    return vectors @ torch.diag(roots) @ vectors.T


def _correlation(normalized: torch.Tensor) -> torch.Tensor:
    # the small ridge keeps a flat (rank-deficient) image invertible
    n = normalized.shape[1]
    eye = torch.eye(normalized.shape[0], dtype=normalized.dtype, device=normalized.device)
    return normalized @ normalized.T / max(n - 1, 1) + 1e-5 * eye  # (C, C)


def coral(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CORAL colour transfer: ``source`` (C, H, W) recoloured to ``target``'s channel mean and covariance.

    Like the AdaIN release, whitening then colouring is done on standardised channels; unlike it the
    correlation is divided by the pixel count, so the result's covariance matches the target's.
    """
    assert source.dim() == 3 and target.dim() == 3 and source.shape[0] == target.shape[0], (
        f"expected (C, H, W) images with equal C, got {tuple(source.shape)} and {tuple(target.shape)}"
    )
    source_flat, source_mean, source_std = _flat_mean_std(source.float())
    target_flat, target_mean, target_std = _flat_mean_std(target.float())
    source_norm = (source_flat - source_mean) / source_std  # (C, Hs*Ws)
    target_norm = (target_flat - target_mean) / target_std  # (C, Ht*Wt)
    whiten = _symmetric_sqrt(_correlation(source_norm), inverse=True)  # (C, C)
    colour = _symmetric_sqrt(_correlation(target_norm))  # (C, C)
    transferred = colour @ whiten @ source_norm  # (C, Hs*Ws), correlation of the target
    return (transferred * target_std + target_mean).view(source.shape).to(source.dtype)


def mix_statistics(
    style_stats: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``weights``-average (normalised to 1) of several styles' (mean, std) statistics."""
    assert len(style_stats) == len(weights) > 0, "need one weight per style and at least one style"
    assert all(w >= 0 for w in weights) and sum(weights) > 0, f"weights must be >= 0, not all 0: {weights}"
    total = float(sum(weights))
    mean, std = torch.zeros_like(style_stats[0][0]), torch.zeros_like(style_stats[0][1])
    for (style_mean, style_std), weight in zip(style_stats, weights, strict=True):
        mean, std = mean + (weight / total) * style_mean, std + (weight / total) * style_std
    return mean, std


def interpolate_statistics(
    content_feat: torch.Tensor, style_stats: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float]
) -> torch.Tensor:
    """``interpolate_styles`` from each style's (mean, std) instead of its features (AdaIN is linear in them).

    The serving predictors cache a style's statistics, so a known style skips the encoder.
    """
    mean, std = mix_statistics(style_stats, weights)
    content_mean, content_std = calc_mean_std(content_feat)  # (1, C, 1, 1) each
    normalized = (content_feat - content_mean) / content_std  # (1, C, H, W)
    return normalized * std + mean


# Where the decoder reaches relu3_1's and relu2_1's resolutions: after its first and second upsampling.
DECODER_DETAIL_SPLITS = (4, 17)


def detail_preserving_decode(
    decoder: torch.nn.Sequential, target: torch.Tensor, content_feat: torch.Tensor, preserve: float
) -> torch.Tensor:
    """Decode ``target`` (1, C4, h, w), blending in the content's structure where the decoder is at relu3_1
    and relu2_1 resolution: there its activations become ``(1 - preserve) · stylized + preserve ·
    AdaIN(content's, stylized)`` — the photo's reconstruction path re-normalised to the painting's channel
    statistics, so colours and texture statistics stay the painting's while edges come from the photo.
    """
    assert 0.0 <= preserve <= 1.0, f"preserve must be in [0, 1], got {preserve}"
    if preserve == 0.0:
        return decoder(target)
    stylized, content = target, content_feat
    start = 0
    for split in DECODER_DETAIL_SPLITS:
        for layer in list(decoder)[start:split]:
            stylized, content = layer(stylized), layer(content)
        blended = adaptive_instance_normalization(content, stylized)  # (1, C, H', W'), stylized's statistics
        stylized = (1.0 - preserve) * stylized + preserve * blended
        start = split
    for layer in list(decoder)[start:]:
        stylized = layer(stylized)
    return stylized
