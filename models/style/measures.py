"""The per-pair measures every style evaluation shares: held-out squares in, style and content losses out.

- style loss: Σ over relu1_1…relu4_1 of the MSE of channel means and of channel stds of L(output) and L(style);
- content loss: MSE of relu4_1 between L(output) and L(content photo);

with L the loss network (the compressed VGG19 with its ``_aux`` heads, VGG19's widths).
"""

from __future__ import annotations

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
    loss_net: LossNetwork,
    outputs: torch.Tensor,
    contents: torch.Tensor,
    style: torch.Tensor,
    content_relu4: torch.Tensor | None = None,
) -> list[tuple[float, float]]:
    """(style loss, content loss) per output (N, 3, S, S), for contents (N, 3, S, S) and one style (1, 3, S, S).

    ``content_relu4``: ``loss_net(contents)[-1]`` when the caller has it already (a grid measures every style
    against the same contents)."""
    output_feats = loss_net(outputs)
    styles = pair_style_losses(output_feats, loss_net(style))
    content_feat = loss_net(contents)[-1] if content_relu4 is None else content_relu4
    contents_losses = pair_content_losses(output_feats[-1], content_feat)
    return list(zip(styles.tolist(), contents_losses.tolist(), strict=True))
