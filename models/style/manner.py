"""Does each painting leave its own manner? Measures over a photo × painting grid of outputs.

- ``own_painting_share``: the share of (photo, painting i) outputs whose style loss (evaluate.py's: Σ over
  relu1_1…relu4_1 of the MSE of channel means and stds) is lower to painting i than to every other painting
  of the grid. A decoder that washes every style toward one palette fails it on similar paintings first.
- ``colour_hist_distance``: the mean Hellinger distance between the RGB histogram (8 bins a channel) of each
  output and of its own painting (0: the same colours, 1: none shared).
- ``palette_spread``: the mean histogram distance between the outputs of one photo under different paintings,
  beside ``painting_palette_spread``, the same between the paintings themselves: a spread well under the
  paintings' own means the outputs share one palette.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import torch

from models.style.adain import calc_mean_std
from models.style.loss_network import LossNetwork

HISTOGRAM_BINS = 8  # per channel: 512 colour cells

Statistics = list[tuple[torch.Tensor, torch.Tensor]]  # per layer, (N, C) means and stds


def style_statistics(loss_net: LossNetwork, images: torch.Tensor) -> Statistics:
    """Channel means and stds (N, C) of each loss-network layer, for images (N, 3, S, S)."""
    return feature_statistics(loss_net(images))


def feature_statistics(features: Sequence[torch.Tensor]) -> Statistics:
    """Channel means and stds (N, C) of each of the loss network's features (N, C, H, W)."""
    return [tuple(t.flatten(1) for t in calc_mean_std(feature)) for feature in features]  # type: ignore[misc]


def concatenated(parts: Sequence[Statistics]) -> Statistics:
    """The statistics of batches measured apart, as one: per layer, their means and their stds stacked."""
    return [
        (torch.cat([p[layer][0] for p in parts]), torch.cat([p[layer][1] for p in parts]))
        for layer in range(len(parts[0]))
    ]


def style_distances(outputs: Statistics, paintings: Statistics) -> torch.Tensor:
    """(N_outputs, N_paintings) style losses: Σ over layers of MSE of means plus MSE of stds."""
    total = torch.zeros(outputs[0][0].shape[0], paintings[0][0].shape[0])
    for (out_mean, out_std), (mean, std) in zip(outputs, paintings, strict=True):
        total += (out_mean[:, None] - mean[None]).pow(2).mean(-1).cpu()  # (N_o, N_p)
        total += (out_std[:, None] - std[None]).pow(2).mean(-1).cpu()
    return total


def colour_histogram(images: torch.Tensor, bins: int = HISTOGRAM_BINS) -> torch.Tensor:
    """Normalised joint RGB histograms (N, bins³) of images (N, 3, H, W) in [0, 1]."""
    cells = (images.clamp(0.0, 1.0) * (bins - 1e-6)).long()  # (N, 3, H, W), each in [0, bins)
    index = (cells[:, 0] * bins + cells[:, 1]) * bins + cells[:, 2]  # (N, H, W)
    counts = torch.stack([torch.bincount(i.flatten(), minlength=bins**3) for i in index]).float()
    return counts / counts.sum(1, keepdim=True)


def hellinger(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hellinger distances between histograms a (N, K) and b (N, K), each in [0, 1]."""
    bhattacharyya = (a * b).sqrt().sum(-1).clamp(max=1.0)
    return (1.0 - bhattacharyya).sqrt()


def own_painting(
    loss_net: LossNetwork,
    styles: list[torch.Tensor],
    outputs: list[torch.Tensor],
    output_statistics: Sequence[Statistics] | None = None,
) -> list[bool]:
    """Per output, style-major (``manner_metrics``' arguments): is its style loss lowest to its own painting?"""
    painting_stats = style_statistics(loss_net, torch.cat(styles))
    own: list[bool] = []
    for index, output in enumerate(outputs):
        measured = output_statistics[index] if output_statistics else style_statistics(loss_net, output)
        own += (style_distances(measured, painting_stats).argmin(1) == index).tolist()  # (N_c, N_s) losses
    return own


def manner_metrics(
    loss_net: LossNetwork,
    styles: list[torch.Tensor],
    outputs: list[torch.Tensor],
    output_statistics: Sequence[Statistics] | None = None,
    own: list[bool] | None = None,
) -> dict[str, float]:
    """The module's measures for ``outputs[i]`` (N_c, 3, S, S): every content stylized by ``styles[i]`` (1, 3, S, S).

    ``output_statistics[i]``: ``style_statistics(loss_net, outputs[i])``, and ``own``: ``own_painting``'s flags,
    where the caller has them already."""
    paintings = torch.cat(styles)  # (N_s, 3, S, S)
    own = own if own is not None else own_painting(loss_net, styles, outputs, output_statistics)
    distances = []
    histograms = colour_histogram(paintings)  # (N_s, K)
    output_histograms = []
    for index, output in enumerate(outputs):
        hist = colour_histogram(output)  # (N_c, K)
        output_histograms.append(hist)
        distances += hellinger(hist, histograms[index].expand_as(hist)).tolist()
    per_photo = torch.stack(output_histograms, 1)  # (N_c, N_s, K)
    pairs = list(itertools.combinations(range(len(styles)), 2))
    spread = [hellinger(per_photo[:, i], per_photo[:, j]).mean().item() for i, j in pairs]
    painting_spread = [hellinger(histograms[i : i + 1], histograms[j : j + 1]).item() for i, j in pairs]
    return {
        "own_painting_share": statistics.fmean(float(o) for o in own),
        "colour_hist_distance": statistics.fmean(distances),
        "palette_spread": statistics.fmean(spread) if spread else 0.0,
        "painting_palette_spread": statistics.fmean(painting_spread) if painting_spread else 0.0,
    }
