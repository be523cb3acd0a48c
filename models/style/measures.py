"""The per-pair measures every style evaluation shares: held-out squares in, style and content losses out.

- style loss: Σ over relu1_1…relu4_1 of the MSE of channel means and of channel stds of L(output) and L(style);
- content loss: MSE of relu4_1 between L(output) and L(content photo);

with L the loss network (the compressed VGG19 with its ``_aux`` heads, VGG19's widths).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from models.style.images import image_to_tensor
from models.style.loss_network import LossNetwork, pair_content_losses, pair_style_losses


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
    return losses_from_features(loss_net(outputs), loss_net(style), loss_net(contents)[-1])


def losses_from_features(
    output_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor], content_relu4: torch.Tensor
) -> list[tuple[float, float]]:
    """``pair_losses`` from the loss network's features of the outputs and the style, and the contents' relu4_1
    (a grid measures every style against the same contents, and keeps the outputs' features for more measures)."""
    styles = pair_style_losses(output_feats, style_feats)
    contents_losses = pair_content_losses(output_feats[-1], content_relu4)
    return list(zip(styles.tolist(), contents_losses.tolist(), strict=True))
