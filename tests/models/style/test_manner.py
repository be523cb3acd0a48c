"""Each painting its own manner: the own-painting share, colour-histogram distances and palette spread."""

from __future__ import annotations

import torch

from models.style.loss_network import LossNetwork, style_loss
from models.style.manner import colour_histogram, hellinger, manner_metrics
from models.style.network import VGGEncoder


def _loss_net() -> LossNetwork:
    torch.manual_seed(0)
    return LossNetwork(VGGEncoder((4, 8, 8, 16)), None, "random slim VGG")


def _painting(colour: tuple[float, float, float], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    texture = 0.15 * torch.rand(1, 3, 32, 32, generator=generator)
    return (torch.tensor(colour).view(1, 3, 1, 1) + texture).clamp(0, 1)  # (1, 3, 32, 32)


PAINTINGS = [_painting((0.8, 0.2, 0.1), 1), _painting((0.1, 0.3, 0.8), 2), _painting((0.2, 0.7, 0.2), 3)]


def test_outputs_that_are_their_paintings_are_all_nearest_their_own_with_no_colour_distance() -> None:
    outputs = [painting.repeat(2, 1, 1, 1) for painting in PAINTINGS]  # two "photos" each
    metrics = manner_metrics(_loss_net(), PAINTINGS, outputs)
    assert metrics["own_painting_share"] == 1.0
    assert metrics["colour_hist_distance"] < 1e-6
    assert abs(metrics["palette_spread"] - metrics["painting_palette_spread"]) < 1e-6


def test_a_decoder_that_paints_every_style_alike_fails_the_share_and_has_no_palette_spread() -> None:
    washed = [PAINTINGS[0].repeat(2, 1, 1, 1) for _ in PAINTINGS]  # every style comes out as the first painting
    metrics = manner_metrics(_loss_net(), PAINTINGS, washed)
    assert metrics["own_painting_share"] == 1 / 3
    assert metrics["palette_spread"] < 1e-6 < metrics["painting_palette_spread"]


def test_histograms_sum_to_one_and_hellinger_is_bounded() -> None:
    histograms = colour_histogram(torch.cat(PAINTINGS))
    torch.testing.assert_close(histograms.sum(1), torch.ones(3))
    distances = hellinger(histograms[:1].expand(3, -1), histograms)
    assert float(distances[0]) < 1e-6 and all(0.0 < float(d) <= 1.0 for d in distances[1:])


def test_style_layer_weights_scale_each_layer_and_a_zero_drops_it() -> None:
    features = [torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]
    targets = [torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]
    first = style_loss(features[:1], targets[:1])
    second = style_loss(features[1:], targets[1:])
    torch.testing.assert_close(style_loss(features, targets), first + second)
    torch.testing.assert_close(style_loss(features, targets, [2.0, 0.0]), 2 * first)
