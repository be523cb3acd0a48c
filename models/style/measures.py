"""The per-pair measures every style evaluation shares: held-out squares in, style and content losses out.

- style loss: Σ over relu1_1…relu4_1 of the MSE of channel means and of channel stds of L(output) and L(style);
- content loss: MSE of relu4_1 between L(output) and L(content photo);

with L the loss network (the compressed VGG19 with its ``_aux`` heads, VGG19's widths).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.nn import functional as F

from models.style.adain import calc_mean_std
from models.style.images import image_to_tensor
from models.style.loss_network import LossNetwork


def square_image(path: Path, size: int, device: torch.device) -> torch.Tensor:
    """The center square of the image at ``path``, resized to (1, 3, size, size) in [0, 1]."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    return image_to_tensor(square, device)


def pair_losses(
    loss_net: LossNetwork, outputs: torch.Tensor, contents: torch.Tensor, style: torch.Tensor
) -> list[tuple[float, float]]:
    """(style loss, content loss) per output (N, 3, S, S), for contents (N, 3, S, S) and one style (1, 3, S, S)."""
    style_stats = [calc_mean_std(f) for f in loss_net(style)]  # 4 × ((1, C, 1, 1), (1, C, 1, 1))
    content_feat = loss_net(contents)[-1]  # (N, 512, S/8, S/8)
    output_feats = loss_net(outputs)
    losses = []
    for index in range(outputs.shape[0]):
        style_value = 0.0
        for feature, (style_mean, style_std) in zip(output_feats, style_stats, strict=True):
            mean, std = calc_mean_std(feature[index : index + 1])
            style_value += (F.mse_loss(mean, style_mean) + F.mse_loss(std, style_std)).item()
        content_value = F.mse_loss(output_feats[-1][index], content_feat[index]).item()
        losses.append((style_value, content_value))
    return losses
