"""FaceNet: a compact residual CNN for face crops (gender), small enough to train on a CPU.

A 3x3 stem, then one residual stage per width; every stage halves the resolution with a strided
basic block (He et al., "Deep Residual Learning", 2015). Global average pooling makes the network
accept any input side >= 32, and a dropout + linear head gives the class logits.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 strided projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(in_channels, out_channels, stride)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        # Zero-init the last BN so each block starts as the identity (Goyal et al., 2017): steadier early epochs.
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(self.conv1(x)))
        return torch.relu(residual + self.shortcut(x))


class FaceNet(nn.Module):
    """Residual CNN: stem -> one strided BasicBlock per width -> global average pool -> dropout -> linear."""

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
        num_classes: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        assert len(widths) >= 1 and all(w > 0 for w in widths), f"widths must be positive, got {widths}"
        assert num_classes >= 2, f"num_classes must be >= 2, got {num_classes}"
        self.widths = tuple(int(w) for w in widths)
        self.stem = conv_bn_relu(3, self.widths[0])
        channels = [self.widths[0], *self.widths]
        self.stages = nn.Sequential(
            *(BasicBlock(c_in, c_out, stride=2) for c_in, c_out in itertools.pairwise(channels))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.widths[-1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(x.shape)}"
        features = self.stages(self.stem(x))  # (B, C_last, H / 2^stages, W / 2^stages)
        pooled = self.pool(features).flatten(1)  # (B, C_last)
        return self.head(self.dropout(pooled))  # (B, num_classes) logits


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
