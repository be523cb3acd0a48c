"""dlib's face-recognition ResNet (``dnn_face_recognition_ex.cpp``) as a torch module.

The residual wiring is not stored in dlib's file; it follows the example's network definition:
- stem: 7x7/2 conv (32), affine, relu, 3x3/2 max pool; stride-2 convolutions and pools have no padding;
- residual blocks ``relu(block(x) + shortcut(x))``, ``block = affine(conv3x3(relu(affine(conv3x3/s(x)))))``;
  a downsampling block (s = 2) has a 2x2/2 average pool of its input as shortcut, and the sum zero-pads
  the smaller tensor at the end (channels 32 -> 64, and 3x3 + 4x4 -> 4x4 spatially at the 256 level);
- 3 x 32, then 64 (down + 3), 128 (down + 2), 256 (down + 2), 256 (down); global average; 128-d fc, no bias.

Input: (B, 3, 150, 150) RGB floats in [0, 255]; the module subtracts dlib's mean and divides by 256 itself.
Output: the raw 128-d descriptor (the predictors L2-normalise it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.identity.dlib_format import DlibFormatError, DlibLayer, DlibNetwork
from models.identity.types import ARCHITECTURE  # noqa: F401  (re-exported)

MEAN = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0
CHIP_SIZE = 150
# (width, downsample) of every residual block, input side first: dlib's alevel4 .. alevel0
BLOCKS = (
    *[(32, False)] * 3,
    (64, True),
    *[(64, False)] * 3,
    (128, True),
    *[(128, False)] * 2,
    (256, True),
    *[(256, False)] * 2,
    (256, True),
)
STEM_TAGS = ["con", "affine", "relu", "max_pool"]
BLOCK_TAGS = ["con", "affine", "relu", "con", "affine"]
HEAD_TAGS = ["avg_pool", "fc"]


class Affine(nn.Module):
    """dlib's ``affine_`` (a frozen batch norm): ``gamma * x + beta`` per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[:, None, None] + self.beta[:, None, None]


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, the smaller tensor zero-padded at the end."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return grow(a) + grow(b)


class Residual(nn.Module):
    def __init__(self, channels_in: int, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, padding)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibFaceResNet(nn.Module):
    """(B, 3, 150, 150) RGB in [0, 255] -> (B, 128) raw descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        widths = [32, *(width for width, _ in BLOCKS)]
        self.blocks = nn.Sequential(*(Residual(widths[i], width, down) for i, (width, down) in enumerate(BLOCKS)))
        self.fc = nn.Linear(256, 128, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.get_buffer("mean")) / INPUT_SCALE
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def expected_tags() -> list[str]:
    tags = list(STEM_TAGS)
    for _, down in BLOCKS:
        tags += [*BLOCK_TAGS, *(["avg_pool"] if down else []), "add_prev", "relu"]
    return tags + HEAD_TAGS


def resnet_from_dlib(network: DlibNetwork) -> DlibFaceResNet:
    """Our module with the parsed layers' weights; refuses a network of another shape."""
    tags = [layer.tag for layer in network.layers]
    if tags != expected_tags():
        raise DlibFormatError(f"the layers {tags[:8]}… are not dlib's face ResNet ({len(tags)} layers)")
    if network.size != (CHIP_SIZE, CHIP_SIZE) or any(
        abs(a - b) > 1e-3 for a, b in zip(network.mean, MEAN, strict=True)
    ):
        raise DlibFormatError(f"input {network.size} mean {network.mean} is not the face ResNet's")
    module = DlibFaceResNet()
    convs = iter(layer for layer in network.layers if layer.tag == "con")
    affines = iter(layer for layer in network.layers if layer.tag == "affine")
    targets = [(module.conv, module.affine)]
    for block in module.blocks:
        assert isinstance(block, Residual)
        targets += [(block.conv1, block.affine1), (block.conv2, block.affine2)]
    with torch.no_grad():
        for conv, affine in targets:
            _load_conv(conv, next(convs))
            _load_affine(affine, next(affines))
        fc = network.layers[-1]
        if fc.params.size != 256 * 128 or fc.settings[:2] != (128, 256):
            raise DlibFormatError(f"fc layer {fc.settings} with {fc.params.size} weights is not 256 -> 128")
        module.fc.weight.copy_(torch.from_numpy(fc.params.reshape(256, 128).T.copy()))
    return module.eval()


def _load_conv(conv: nn.Conv2d, layer: DlibLayer) -> None:
    filters, rows, cols, stride, _, padding, _ = layer.settings
    weight, bias = conv.weight, conv.bias
    assert bias is not None
    if (filters, rows, cols, stride, padding) != (
        conv.out_channels,
        *conv.kernel_size,
        *conv.stride[:1],
        conv.padding[0],
    ):
        raise DlibFormatError(f"conv {layer.settings} does not match {conv}")
    if layer.params.size != weight.numel() + bias.numel():
        raise DlibFormatError(f"conv {layer.settings} has {layer.params.size} parameters, expected more or fewer")
    weight.copy_(torch.from_numpy(layer.params[: weight.numel()].reshape(weight.shape).copy()))
    bias.copy_(torch.from_numpy(layer.params[weight.numel() :].copy()))


def _load_affine(affine: Affine, layer: DlibLayer) -> None:
    channels = affine.gamma.numel()
    if layer.params.size != 2 * channels:
        raise DlibFormatError(f"affine layer has {layer.params.size} parameters, expected {2 * channels}")
    affine.gamma.copy_(torch.from_numpy(layer.params[:channels].copy()))
    affine.beta.copy_(torch.from_numpy(layer.params[channels:].copy()))
