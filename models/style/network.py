"""The AdaIN encoder (VGG19 up to relu4_1) and its mirror decoder.

Both are ``nn.Sequential`` with exactly the layer order of naoto0804/pytorch-AdaIN's ``net.py``,
so the public ``vgg_normalised.pth`` (keys up to ``29.*``, i.e. relu4_1) and ``decoder.pth`` load
with ``load_state_dict``. ``widths`` scales the channel counts of the four VGG stages; the
original is ``(64, 128, 256, 512)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

VGG_WIDTHS = (64, 128, 256, 512)
# Conv layers per VGG19 stage up to relu4_1: two, two, four, then only conv4_1.
_STAGE_CONVS = (2, 2, 4, 1)
# Index of relu1_1, relu2_1, relu3_1 and relu4_1 in the encoder's Sequential.
RELU_X_1 = (3, 10, 17, 30)


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    # reflection padding, not zero padding: the released weights were trained with it (no border seams)
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(in_channels, out_channels, (3, 3)), nn.ReLU()]


def _check_widths(widths: Sequence[int]) -> tuple[int, int, int, int]:
    assert len(widths) == 4 and all(int(w) > 0 for w in widths), f"widths must be 4 positive ints: {widths}"
    return (int(widths[0]), int(widths[1]), int(widths[2]), int(widths[3]))


def _encoder_layers(widths: tuple[int, int, int, int]) -> list[nn.Module]:
    # conv0 is a 1x1 conv that maps RGB in [0, 1] to the BGR, mean-subtracted 0..255 input VGG was trained on
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    in_channels = 3
    for stage, (width, convs) in enumerate(zip(widths, _STAGE_CONVS, strict=True)):
        if stage > 0:
            layers.append(nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True))
        for _ in range(convs):
            layers += _conv_block(in_channels, width)
            in_channels = width
    return layers


def _decoder_layers(widths: tuple[int, int, int, int]) -> list[nn.Module]:
    w1, w2, w3, w4 = widths
    layers: list[nn.Module] = [*_conv_block(w4, w3), _upsample()]
    layers += [*_conv_block(w3, w3), *_conv_block(w3, w3), *_conv_block(w3, w3), *_conv_block(w3, w2)]
    layers += [_upsample(), *_conv_block(w2, w2), *_conv_block(w2, w1)]
    layers += [_upsample(), *_conv_block(w1, w1), *_conv_block(w1, 3)[:2]]  # the last conv has no ReLU
    return layers


def _upsample() -> nn.Module:
    # nearest, as released: it undoes the encoder's 2x2 max pools without checkerboard artefacts
    return nn.Upsample(scale_factor=2, mode="nearest")


class VGGEncoder(nn.Sequential):
    """VGG19 (``vgg_normalised``) truncated at relu4_1; takes RGB in [0, 1] of shape (N, 3, H, W)."""

    def __init__(self, widths: Sequence[int] = VGG_WIDTHS) -> None:
        checked = _check_widths(widths)
        super().__init__(*_encoder_layers(checked))
        self.widths = checked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu4_1 features, (N, widths[3], ceil(H/8), ceil(W/8))."""
        return super().forward(x)

    def encode_with_intermediate(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[relu1_1, relu2_1, relu3_1, relu4_1], the layers AdaIN's and Gatys' style losses use."""
        features = []
        start = 0
        for end in RELU_X_1:
            for layer in list(self)[start : end + 1]:
                x = layer(x)
            features.append(x)
            start = end + 1
        return features


class Decoder(nn.Sequential):
    """Mirror of the encoder: relu4_1 features back to an RGB image, 8x the feature map's side."""

    def __init__(self, widths: Sequence[int] = VGG_WIDTHS) -> None:
        checked = _check_widths(widths)
        super().__init__(*_decoder_layers(checked))
        self.widths = checked
