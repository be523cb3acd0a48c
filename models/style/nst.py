"""Classical neural style transfer (Gatys, Ecker & Bethge 2016): optimise the pixels themselves.

Uses the style artifact's encoder as the loss network: content loss on relu4_1, Gram-matrix style
loss on relu1_1..relu4_1, and a total-variation penalty; the image starts from the content and
takes exactly ``iterations`` Adam steps, clamped to [0, 1] after each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from models.artifact import Manifest
from models.style.images import image_to_tensor, resize_for_network, tensor_to_image
from models.style.network import VGGEncoder
from models.style.predictor import load_frozen
from models.style.types import (
    CONTENT_WEIGHT,
    ENCODER_FILE,
    STYLE_WEIGHT,
    TV_WEIGHT,
    NSTRequest,
    widths_from_manifest,
)

MAX_ITERATIONS = 2000
# Adam's step is scale-free: 0.02 moves a pixel at most ~1.2 over 60 steps, plenty for a [0, 1] image.
LEARNING_RATE = 0.02

__all__ = [
    "CONTENT_WEIGHT",
    "LEARNING_RATE",
    "MAX_ITERATIONS",
    "STYLE_WEIGHT",
    "TV_WEIGHT",
    "NSTLoss",
    "NSTRequest",
    "NeuralStyleTransfer",
    "gram_matrix",
    "nst_losses",
    "optimise_image",
    "total_variation",
]


@dataclass(frozen=True)
class NSTLoss:
    """The weighted terms of the objective; ``total`` is what the optimiser minimises."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style + self.tv


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """Channel correlations (N, C, C) of (N, C, H, W) features, divided by C·H·W so sizes compare."""
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w)  # (N, C, H*W)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (N, C, C)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of a (N, 3, H, W) image."""
    down = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean()
    right = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean()
    return down + right


def nst_losses(
    encoder: VGGEncoder,
    image: torch.Tensor,
    content_target: torch.Tensor,
    style_grams: list[torch.Tensor],
    weights: tuple[float, float, float],
) -> NSTLoss:
    """Weighted content, style and TV losses of ``image`` (1, 3, H, W); ``weights`` = (content, style, tv)."""
    content_weight, style_weight, tv_weight = weights
    features = encoder.encode_with_intermediate(image)  # [relu1_1, ..., relu4_1]
    content = torch.nn.functional.mse_loss(features[-1], content_target)
    style = sum(
        (torch.nn.functional.mse_loss(gram_matrix(f), g) for f, g in zip(features, style_grams, strict=True)),
        start=torch.zeros((), device=image.device),
    )
    return NSTLoss(content_weight * content, style_weight * style, tv_weight * total_variation(image))


def optimise_image(
    encoder: VGGEncoder,
    content: torch.Tensor,
    style: torch.Tensor,
    iterations: int,
    weights: tuple[float, float, float] = (CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT),
) -> tuple[torch.Tensor, list[float]]:
    """Run exactly ``iterations`` Adam steps from ``content``; returns the image and each step's total loss.

    Gradients flow to the pixels only: the encoder's parameters must already be frozen.
    """
    assert 1 <= iterations <= MAX_ITERATIONS, f"iterations must be in [1, {MAX_ITERATIONS}], got {iterations}"
    assert not any(p.requires_grad for p in encoder.parameters()), "freeze the encoder before optimising"
    with torch.inference_mode(False), torch.enable_grad():  # callers may sit in inference mode
        with torch.no_grad():
            content_target = encoder(content)  # (1, C4, H/8, W/8)
            style_grams = [gram_matrix(f) for f in encoder.encode_with_intermediate(style)]
        image = content.detach().clone().requires_grad_(True)  # (1, 3, H, W), the only parameter
        optimiser = torch.optim.Adam([image], lr=LEARNING_RATE)
        history = []
        for _ in range(iterations):
            optimiser.zero_grad(set_to_none=True)
            loss = nst_losses(encoder, image, content_target, style_grams, weights).total
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                image.clamp_(0.0, 1.0)  # projected gradient descent: stay a valid image
            history.append(float(loss.detach()))
        return image.detach(), history


class NeuralStyleTransfer:
    """Gatys NST predictor: ``predict(list[NSTRequest]) -> list[PIL.Image.Image]`` (RGB).

    Built from the same artifact as :class:`~models.style.predictor.StyleTransfer`; only its encoder is used.
    """

    def __init__(self, encoder: VGGEncoder, manifest: Manifest, device: torch.device) -> None:
        self.encoder = encoder
        self.manifest = manifest
        self.device = device

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> NeuralStyleTransfer:
        encoder = load_frozen(VGGEncoder(widths_from_manifest(manifest)), folder, manifest, ENCODER_FILE, device)
        return cls(encoder, manifest, device)

    def eval(self) -> NeuralStyleTransfer:
        self.encoder.eval()
        return self

    def predict(self, batch: list[NSTRequest]) -> list[Image.Image]:
        """One optimised RGB image per request, in order, at the resized content's size.

        Not under ``torch.inference_mode()`` like other predictors: the optimisation needs gradients.
        """
        return [self._stylize_one(request) for request in batch]

    def warmup(self) -> None:
        tiny = Image.new("RGB", (32, 32), (128, 96, 64))
        self.predict([NSTRequest(tiny, tiny, iterations=1, max_side=32)])

    def _stylize_one(self, request: NSTRequest) -> Image.Image:
        content = image_to_tensor(resize_for_network(request.content, request.max_side), self.device)
        style = image_to_tensor(resize_for_network(request.style, request.max_side), self.device)
        weights = (request.content_weight, request.style_weight, request.tv_weight)
        image, _ = optimise_image(self.encoder, content, style, request.iterations, weights)
        return tensor_to_image(image)
