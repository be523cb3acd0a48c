"""Decoder-side statistics matching: the painting's manner at every scale the decoder paints, not only relu4_1.

AdaIN gives the content's relu4_1 features the style's channel statistics; the decoder then paints finer
scales from that one coarse target, and its strokes and colours drift toward what it paints for every style
(adain v1/v2's content-loss/style-loss balance, and the similar cast that warm paintings leave).
``MatchingDecoder`` runs the artifact's decoder and, after each of the named ReLUs, moves its activations
part of the way (``strength``) to the channel means and standard deviations that the *same* decoder layer
has when it reconstructs the painting itself (the painting's relu4_1 features decoded without AdaIN):

    x ← x + strength · (AdaIN(x; μ_style, σ_style) − x)

The painting's statistics come from one pass of the same module over its features with ``strength`` 0 (its
second and third outputs), so a style costs one more decoder pass, once: the predictors cache them beside
its relu4_1 statistics, and only when a request asks for a strength above 0 (a request's ``manner``, times
its ``alpha``, so alpha 0 still decodes the plain reconstruction). The strength is an input, not a constant,
so the ONNX file (``matching_decoder.onnx``) takes it per call. The artifact records the layers and its
default manner in ``hyperparameters.decoder_matching``; how that default was chosen: ``docs/style.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.style.types import MatchingSettings

EPS = 1e-5  # models.style.adain.calc_mean_std's: a flat channel's std stays away from zero


def relu_layers(decoder: nn.Sequential) -> tuple[int, ...]:
    """The indices of every ReLU of ``decoder`` (the default matching positions)."""
    return tuple(index for index, layer in enumerate(decoder) if isinstance(layer, nn.ReLU))


class MatchingDecoder(nn.Module):
    """``forward(features, means, stds, strength) -> (image, own_means, own_stds)``.

    ``features`` (B, C4, h, w); ``means`` and ``stds`` (B, ΣC): the targets at the matched layers, in order;
    ``strength`` (B, 1) in [0, 1]. ``image`` (B, 3, 8h, 8w) is clamped to [0, 1]; ``own_means`` and
    ``own_stds`` (B, ΣC) are this pass's statistics at those layers before matching (with strength 0: the
    targets a painting sets for later calls).
    """

    def __init__(self, decoder: nn.Sequential, layers: Sequence[int], clamp: bool = True) -> None:
        super().__init__()
        self.clamp = clamp  # training reads the unclamped output, as the paper's decoder training does
        relus = set(relu_layers(decoder))
        assert layers and all(index in relus for index in layers), f"match after the decoder's ReLUs {relus}"
        self.decoder = decoder
        self.layers = tuple(sorted(layers))
        # a ReLU's channels are those of the convolution before it
        self.channels = tuple(_out_channels(decoder[index - 1]) for index in self.layers)

    @property
    def width(self) -> int:
        """ΣC: the length of the statistics vectors."""
        return sum(self.channels)

    def settings(self, strength: float) -> MatchingSettings:
        """What an artifact records of this module at ``strength``."""
        return MatchingSettings(self.layers, strength, self.channels)

    def forward(
        self, features: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, strength: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = features
        own_means, own_stds = [], []
        offset, position = 0, 0
        gain = strength[:, :, None, None]  # (B, 1, 1, 1)
        for index, layer in enumerate(self.decoder):
            x = layer(x)
            if position < len(self.layers) and index == self.layers[position]:
                count = self.channels[position]
                x = x.float()  # a no-op in float32; under bfloat16 autocast (training) the statistics need it
                # E[x²] − E[x]²: two reductions OpenVINO runs side by side (var_mean's two passes cost 40 % more)
                mean = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
                square = (x * x).mean(dim=(2, 3), keepdim=True)
                std = ((square - mean * mean).clamp_min(0.0) + EPS).sqrt()  # calc_mean_std's
                own_means.append(mean.flatten(1))
                own_stds.append(std.flatten(1))
                target_mean = means[:, offset : offset + count, None, None]
                target_std = stds[:, offset : offset + count, None, None]
                # x + gain · (AdaIN(x) − x) is affine in x per channel: one pass over the activations
                scale = 1.0 + gain * (target_std / std - 1.0)  # (B, C, 1, 1)
                x = x * scale + gain * (target_mean - mean * target_std / std)
                offset, position = offset + count, position + 1
        return x.clamp(0.0, 1.0) if self.clamp else x, torch.cat(own_means, 1), torch.cat(own_stds, 1)

    def statistics(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (B, ΣC) means and stds the plain decoding of ``features`` has at the matched layers."""
        batch = features.shape[0]
        zeros = features.new_zeros(batch, self.width)
        _, means, stds = self(features, zeros, zeros + 1.0, features.new_zeros(batch, 1))
        return means, stds


def _out_channels(layer: nn.Module) -> int:
    assert isinstance(layer, nn.Conv2d), f"a matched ReLU must follow a convolution, not {type(layer).__name__}"
    return layer.out_channels
