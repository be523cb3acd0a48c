"""Classical neural style transfer (Gatys, Ecker & Bethge 2016): optimise the pixels themselves.

L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search) from the content image over a frozen loss network:
Gram-matrix style loss on relu1_1…relu5_1 and content loss on relu4_2 of the compressed VGG19 to relu5_1
(``nst_network.py``, stored in the style artifact), plus total variation. An artifact without that network
falls back to its AdaIN encoder: style on relu1_1…relu4_1, content on relu4_1 (it has no relu4_2).
The optimisation stops after ``iterations`` L-BFGS steps or ``max_seconds``, whichever comes first, or at
the next evaluation once the request's ``stop`` event is set (its client has gone); images over 256 px are
optimised at half size first, then at full size (``coarse_to_fine``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from models.artifact import Manifest
from models.style.images import image_to_tensor, resize_for_network, tensor_to_image
from models.style.network import VGGEncoder
from models.style.nst_network import NST_NETWORK_FILE, nst_network_from_manifest
from models.style.predictor import load_frozen
from models.style.sizing import to_served_size
from models.style.types import (
    CONTENT_WEIGHT,
    ENCODER_FILE,
    STYLE_WEIGHT,
    TV_WEIGHT,
    NSTRequest,
    NSTResult,
    widths_from_manifest,
)

MAX_ITERATIONS = 2000
COARSE_ABOVE = 256  # larger images start at half size (coarse_to_fine)
# relu5_1 sits after four 2x poolings and its reflection padding needs 2 pixels there: 32 at the input. A smaller
# photo or painting (or the short side of a very wide one) is painted at 32 px and the result brought back to the
# photo's proportions (sizing.to_served_size).
NST_MIN_SIDE = 32
LBFGS_CHUNK = 10  # most L-BFGS steps between looks at the clock (each look costs one extra evaluation)


class Stopped(Exception):
    """The request's ``stop`` event was set during an evaluation: the optimisation ends there."""


__all__ = ["MAX_ITERATIONS", "EncoderFeatures", "NSTLoss", "NeuralStyleTransfer", "gram_matrix", "paint"]


class EncoderFeatures(nn.Module):
    """The fallback loss network: an AdaIN encoder's relu1_1…relu4_1 as style, relu4_1 as content."""

    def __init__(self, encoder: VGGEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        features = self.encoder.encode_with_intermediate(image)
        return features, features[-1]


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
    """Channel correlations (N, C, C) of (N, C, H, W) features, divided by H·W so image sizes compare.

    Not by C as well: the loss network's features are of order 1 at every layer, so these Grams are too, and
    each layer weighs about the same in the style loss.
    """
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w)  # (N, C, H*W)
    return flat @ flat.transpose(1, 2) / (h * w)  # (N, C, C)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels of a (N, 3, H, W) image."""
    down = (image[:, :, 1:, :] - image[:, :, :-1, :]).pow(2).mean()
    right = (image[:, :, :, 1:] - image[:, :, :, :-1]).pow(2).mean()
    return down + right


def nst_losses(
    network: nn.Module,
    image: torch.Tensor,
    content_target: torch.Tensor,
    style_grams: list[torch.Tensor],
    weights: tuple[float, float, float],
) -> NSTLoss:
    """Weighted content, style and TV losses of ``image`` (1, 3, H, W); ``weights`` = (content, style, tv)."""
    content_weight, style_weight, tv_weight = weights
    style_feats, content_feat = network(image)
    content = torch.nn.functional.mse_loss(content_feat, content_target)
    style = sum(
        (torch.nn.functional.mse_loss(gram_matrix(f), g) for f, g in zip(style_feats, style_grams, strict=True)),
        start=torch.zeros((), device=image.device),
    )
    return NSTLoss(content_weight * content, style_weight * style, tv_weight * total_variation(image))


def paint(
    network: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    iterations: int,
    max_seconds: float | None = None,
    weights: tuple[float, float, float] = (CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT),
    start: torch.Tensor | None = None,
    stop: threading.Event | None = None,
) -> tuple[torch.Tensor, int]:
    """L-BFGS from ``start`` (default: ``content``, (1, 3, H, W)) for at most ``iterations`` steps and ``max_seconds``,
    and no further evaluation once ``stop`` is set.

    Returns the image, clamped to [0, 1], and the steps taken. The network's parameters must be frozen.
    """
    assert 1 <= iterations <= MAX_ITERATIONS, f"iterations must be in [1, {MAX_ITERATIONS}], got {iterations}"
    assert not any(p.requires_grad for p in network.parameters()), "freeze the network before optimising"
    deadline = time.monotonic() + max_seconds if max_seconds is not None else float("inf")
    with torch.inference_mode(False), torch.enable_grad():  # callers may sit in inference mode
        with torch.no_grad():
            content_target = network(content)[1]
            style_grams = [gram_matrix(f) for f in network(style)[0]]
        first = content if start is None else start
        image = first.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # (1, 3, H, W)
        optimiser = torch.optim.LBFGS(
            [image],
            lr=1.0,
            max_iter=1,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
        )

        def closure() -> torch.Tensor:
            if stop is not None and stop.is_set():
                raise Stopped
            optimiser.zero_grad(set_to_none=True)
            loss = nst_losses(network, image, content_target, style_grams, weights).total
            loss.backward()
            return loss

        steps, started = 0, time.monotonic()
        while steps < iterations and time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            # as many steps as the time left allows at the pace so far (one at first), at most a chunk
            left = deadline - time.monotonic()
            pace = (time.monotonic() - started) / steps if steps else math.inf
            affordable = int(left / pace) if math.isfinite(left) and steps else (LBFGS_CHUNK if steps else 1)
            chunk = max(1, min(LBFGS_CHUNK, iterations - steps, affordable))
            # both: LBFGS derives max_eval from max_iter only when it is built
            optimiser.param_groups[0].update(max_iter=chunk, max_eval=chunk * 3)
            before = optimiser.state[image].get("n_iter", 0) if image in optimiser.state else 0
            try:
                optimiser.step(closure)
            except Stopped:
                break
            taken = optimiser.state[image]["n_iter"] - before
            steps += taken
            if taken == 0:  # converged: L-BFGS stopped on its own tolerances
                break
        return image.detach().clamp(0.0, 1.0), steps


class NeuralStyleTransfer:
    """Gatys NST predictor: ``predict(list[NSTRequest]) -> list[NSTResult]``.

    Built from the same artifact as :class:`~models.style.predictor.StyleTransfer`: its NST network when it
    has one, else its AdaIN encoder.
    """

    def __init__(self, network: nn.Module, manifest: Manifest, device: torch.device) -> None:
        self.network = network
        self.manifest = manifest
        self.device = device

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> NeuralStyleTransfer:
        network = nst_network_from_manifest(manifest)
        if network is not None:
            return cls(load_frozen(network, folder, manifest, NST_NETWORK_FILE, device), manifest, device)
        encoder = load_frozen(VGGEncoder(widths_from_manifest(manifest)), folder, manifest, ENCODER_FILE, device)
        return cls(EncoderFeatures(encoder).eval(), manifest, device)

    @property
    def layers(self) -> str:
        return "relu1_1…relu5_1, content relu4_2" if not isinstance(self.network, EncoderFeatures) else "relu1_1…4_1"

    def eval(self) -> NeuralStyleTransfer:
        self.network.eval()
        return self

    def predict(self, batch: list[NSTRequest]) -> list[NSTResult]:
        """One optimised RGB image (the photo's proportions, longer side at most ``max_side``) and its steps, in order.

        Not under ``torch.inference_mode()`` like other predictors: the optimisation needs gradients.
        """
        return [self._stylize_one(request) for request in batch]

    def warmup(self) -> None:
        tiny = Image.new("RGB", (32, 32), (128, 96, 64))
        self.predict([NSTRequest(tiny, tiny, iterations=1, max_side=32)])

    def _stylize_one(self, request: NSTRequest) -> NSTResult:
        started = time.monotonic()
        content = image_to_tensor(resize_for_network(request.content, request.max_side, NST_MIN_SIDE), self.device)
        style = image_to_tensor(resize_for_network(request.style, request.max_side, NST_MIN_SIDE), self.device)
        weights = (request.content_weight, request.style_weight, request.tv_weight)
        image, steps = coarse_to_fine(
            self.network, content, style, request.iterations, request.max_seconds, weights, request.stop
        )
        painted = to_served_size(tensor_to_image(image), request.content.size, request.max_side)
        return NSTResult(painted, steps, time.monotonic() - started)


def coarse_to_fine(
    network: nn.Module,
    content: torch.Tensor,
    style: torch.Tensor,
    iterations: int,
    max_seconds: float | None,
    weights: tuple[float, float, float],
    stop: threading.Event | None = None,
) -> tuple[torch.Tensor, int]:
    """``paint`` at half size first (a quarter of the cost per step) for half the budget, then at full size
    from the upsampled result: at 512 px on a CPU the strokes form in the steps a full-size run could not afford.
    Images up to ``COARSE_ABOVE`` px, and those whose half would be thinner than ``NST_MIN_SIDE``, run at full size
    only. Returns the image and the steps of both stages.
    """
    too_thin = min(*content.shape[-2:], *style.shape[-2:]) < 2 * NST_MIN_SIDE  # half of it: too small for relu5_1
    if max(content.shape[-2:]) <= COARSE_ABOVE or iterations < 2 or too_thin:
        return paint(network, content, style, iterations, max_seconds, weights, stop=stop)
    started = time.monotonic()
    half = [F.interpolate(t, scale_factor=0.5, mode="bilinear", antialias=True) for t in (content, style)]
    budget = max_seconds / 2 if max_seconds is not None else None
    coarse, first = paint(network, half[0], half[1], iterations // 2, budget, weights, stop=stop)
    upsampled = F.interpolate(coarse, size=content.shape[-2:], mode="bilinear")  # (1, 3, H, W)
    left = max_seconds - (time.monotonic() - started) if max_seconds is not None else None
    if (left is not None and left <= 0) or (stop is not None and stop.is_set()):  # out of time, or stopped
        return upsampled.clamp(0.0, 1.0), first
    image, second = paint(network, content, style, iterations - first, left, weights, start=upsampled, stop=stop)
    return image, first + second
