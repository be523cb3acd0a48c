"""Arbitrary style transfer with AdaIN: encode content and styles, match statistics, decode (torch).

Requests, sizing and the artifact's names are torch-free (``models.style.types``, ``models.style.sizing``),
shared with the ONNX predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.style.adain import calc_mean_std, coral, interpolate_statistics, mix_statistics
from models.style.images import image_to_tensor, resize_for_network, tensor_to_image
from models.style.matching import MatchingDecoder
from models.style.network import Decoder, VGGEncoder
from models.style.sizing import to_served_size
from models.style.style_cache import StyleKey, StyleStatistics, request_style_keys
from models.style.types import (
    ARCHITECTURE,
    DECODER_FILE,
    ENCODER_FILE,
    StylizeRequest,
    matching_settings,
    warmup_request,
    widths_from_manifest,
)
from models.torch_backend import load_state

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

__all__ = [
    "ARCHITECTURE",
    "DECODER_FILE",
    "ENCODER_FILE",
    "StyleTransfer",
    "StylizeRequest",
    "load_frozen",
    "widths_from_manifest",
]


def load_frozen(module: ModuleT, folder: Path, manifest: Manifest, path: str, device: torch.device) -> ModuleT:
    """Load ``path``'s weights into ``module`` on ``device``, in eval mode with gradients off."""
    try:
        module.load_state_dict(load_state(folder, manifest, path, device))
    except RuntimeError as error:  # missing, unexpected or mis-shaped keys
        raise ArtifactError(f"{manifest.name}/{manifest.version}: {path} does not fit: {error}") from error
    module.to(device).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


class StyleTransfer:
    """AdaIN predictor: ``predict(list[StylizeRequest]) -> list[PIL.Image.Image]`` (RGB)."""

    def __init__(self, encoder: VGGEncoder, decoder: Decoder, manifest: Manifest, device: torch.device) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.manifest = manifest
        self.device = device
        self.statistics: StyleStatistics[torch.Tensor] = StyleStatistics()
        self.decoder_statistics: StyleStatistics[torch.Tensor] = StyleStatistics()  # filled when manner > 0
        settings = matching_settings(manifest)
        # decoder-side matching (models.style.matching), when the artifact chose it; None: plain decoding
        self.matching = MatchingDecoder(decoder, settings.layers).eval() if settings else None
        self.matching_strength = settings.strength if settings else 0.0
        if self.matching is not None and settings and self.matching.channels != settings.channels:
            raise ArtifactError(f"{manifest.name}/{manifest.version}: decoder_matching.channels do not fit the decoder")

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> StyleTransfer:
        widths = widths_from_manifest(manifest)
        encoder = load_frozen(VGGEncoder(widths), folder, manifest, ENCODER_FILE, device)
        decoder = load_frozen(Decoder(widths), folder, manifest, DECODER_FILE, device)
        return cls(encoder, decoder, manifest, device)

    def eval(self) -> StyleTransfer:
        self.encoder.eval()
        self.decoder.eval()
        return self

    def predict(self, batch: list[StylizeRequest]) -> list[Image.Image]:
        """One stylized RGB image per request, in order; each is the resized content's size."""
        with torch.inference_mode():
            return [self._stylize_one(request) for request in batch]

    def warmup(self) -> None:
        self.predict([warmup_request()])

    def remember_styles(self, styles: list[Image.Image], max_side: int) -> None:
        """Encode ``styles`` now (the gallery, at load), so requests naming them at ``max_side`` skip the encoder."""
        content = Image.new("RGB", (32, 32))
        self.predict([StylizeRequest(content, (style,), (1.0,), 1.0, False, max_side) for style in styles])

    def _stylize_one(self, request: StylizeRequest) -> Image.Image:
        content, styles = self.preprocess(request)
        keys = request_style_keys(request)
        weights = list(request.weights)
        output = self.stylize(content, styles, weights, request.alpha, keys, request.manner)  # (1, 3, H, W)
        return to_served_size(tensor_to_image(output), request.content.size, request.max_side)

    def preprocess(self, request: StylizeRequest) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Content (1, 3, H, W) and styles (1, 3, Hs, Ws), sized by ``max_side``; styles recoloured if asked."""
        assert len(request.styles) == len(request.weights) > 0, "need one weight per style and at least one"
        content = image_to_tensor(resize_for_network(request.content, request.max_side), self.device)
        styles = [image_to_tensor(resize_for_network(s, request.max_side), self.device) for s in request.styles]
        if request.preserve_color:
            # the AdaIN release's preserve_color: give each style the content's colour statistics
            styles = [coral(style[0], content[0]).clamp(0.0, 1.0).unsqueeze(0) for style in styles]
        return content, styles

    def stylize(
        self,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        weights: list[float],
        alpha: float,
        keys: list[StyleKey | None] | None = None,
        manner: float | None = None,
    ) -> torch.Tensor:
        """Decoded ``alpha``-blend of the (interpolated) AdaIN target and the content features, in [0, 1].

        ``keys`` name the styles in the statistics cache (None: compute them, cache nothing); ``manner`` the
        decoder-side matching's strength (None: the artifact's default).
        """
        assert 0.0 <= alpha <= 1.0, f"alpha must be in [0, 1], got {alpha}"
        content_feat = self.encoder(content)  # (1, C4, H/8, W/8)
        keys = keys or [None] * len(styles)
        style_stats = [self._style_statistics(style, key) for style, key in zip(styles, keys, strict=True)]
        target = interpolate_statistics(content_feat, style_stats, weights)  # one style: plain AdaIN
        blended = alpha * target + (1.0 - alpha) * content_feat
        strength = alpha * (self.matching_strength if manner is None else manner)  # alpha 0: the reconstruction
        if self.matching is None or strength == 0.0:
            assert self.matching is not None or not manner, "this artifact's decoder does not match"
            return self.decoder(blended).clamp(0.0, 1.0)  # (1, 3, H, W)
        matching = self.matching
        pairs = zip(styles, keys, strict=True)
        means, stds = mix_statistics([self._decoder_statistics(matching, s, k) for s, k in pairs], weights)
        return matching(blended, means, stds, content_feat.new_full((1, 1), strength))[0]

    def _style_statistics(self, style: torch.Tensor, key: StyleKey | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The style's relu4_1 (mean, std), each (1, C4, 1, 1): from the cache, else from the encoder."""
        return self.statistics.get(key, lambda: calc_mean_std(self.encoder(style)))

    def _decoder_statistics(
        self, matching: MatchingDecoder, style: torch.Tensor, key: StyleKey | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (1, ΣC) means and stds of the decoder's own decoding of the style, at the matched layers."""
        return self.decoder_statistics.get(key, lambda: matching.statistics(self.encoder(style)))
