"""PIL images to and from the (1, 3, H, W) tensors in [0, 1] the torch style networks take.

Sizing lives in the torch-free ``models.style.sizing`` (re-exported here); these are its torch twins.
"""

from __future__ import annotations

import torch
from PIL import Image

from models.style.sizing import MIN_SIDE, SIDE_MULTIPLE, array_to_image, fit_size, image_to_array, resize_for_network

__all__ = ["MIN_SIDE", "SIDE_MULTIPLE", "fit_size", "image_to_tensor", "resize_for_network", "tensor_to_image"]


def image_to_tensor(image: Image.Image, device: torch.device) -> torch.Tensor:
    """An RGB image as a float tensor (1, 3, H, W) in [0, 1] on ``device``."""
    return torch.from_numpy(image_to_array(image)).to(device)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) tensor, clamped to [0, 1], as an RGB image."""
    image = tensor.detach().squeeze(0).clamp(0.0, 1.0)  # (3, H, W)
    assert image.dim() == 3 and image.shape[0] == 3, f"expected one RGB image, got {tuple(tensor.shape)}"
    return array_to_image(image.float().cpu().numpy())
