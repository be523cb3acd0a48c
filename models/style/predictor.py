"""Arbitrary style transfer with AdaIN: encode content and styles, match statistics, decode (torch).

Requests, sizing and the artifact's names are torch-free (``models.style.types``, ``models.style.sizing``),
shared with the ONNX predictor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.style.adain import calc_mean_std, coral, interpolate_statistics, mix_statistics
from models.style.adain_requests import AdainPredictor
from models.style.images import image_to_tensor, tensor_to_image
from models.style.matching import MatchingDecoder
from models.style.network import Decoder, VGGEncoder
from models.style.nst_network import NST_NETWORK_FILE, ContentMeasure, nst_network_from_manifest
from models.style.own_manner import (
    REFERENCE_DECODER,
    OwnManner,
    PaintingManners,
    PaintingStatistics,
    applied,
)
from models.style.style_cache import StyleKey, StyleStatistics
from models.style.types import (
    ARCHITECTURE,
    DECODER_FILE,
    ENCODER_FILE,
    StylizeRequest,
    matching_settings,
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


class StyleTransfer(AdainPredictor[torch.Tensor]):
    """AdaIN predictor on torch: ``predict(list[StylizeRequest]) -> list[PIL.Image.Image]`` (RGB)."""

    def __init__(
        self,
        encoder: VGGEncoder,
        decoder: Decoder,
        manifest: Manifest,
        device: torch.device,
        folder: Path | None = None,
    ) -> None:
        """``folder``: the artifact's, where its matching measures each painting's own manner (own_manner.py)."""
        self.encoder = encoder
        self.decoder = decoder
        self.manifest = manifest
        self.device = device
        self.statistics: StyleStatistics[torch.Tensor] = StyleStatistics()
        self.decoder_statistics: StyleStatistics[torch.Tensor] = StyleStatistics()  # filled when manner > 0
        settings = matching_settings(manifest)
        # decoder-side matching (models.style.matching), when the artifact chose it; None: plain decoding
        self.matching = MatchingDecoder(decoder, settings.layers).eval() if settings else None
        self.default_manner: float | OwnManner = settings.default if settings else 0.0
        if self.matching is not None and settings and self.matching.channels != settings.channels:
            raise ArtifactError(f"{manifest.name}/{manifest.version}: decoder_matching.channels do not fit the decoder")
        self.painting_manners: PaintingManners | None = None
        if settings and settings.own:
            if folder is None:
                raise ArtifactError(f"{manifest.name}/{manifest.version}: its own manner needs the artifact's folder")
            reference = Decoder(widths_from_manifest(manifest))
            reference = load_frozen(reference, folder, manifest, f"{REFERENCE_DECODER}.safetensors", device)
            networks = _TorchNetworks(self, reference, content_measure(folder, manifest, device))
            self.painting_manners = PaintingManners.from_artifact(folder, settings.own, networks)

    @classmethod
    def from_artifact(cls, folder: Path, manifest: Manifest, device: torch.device) -> StyleTransfer:
        widths = widths_from_manifest(manifest)
        encoder = load_frozen(VGGEncoder(widths), folder, manifest, ENCODER_FILE, device)
        decoder = load_frozen(Decoder(widths), folder, manifest, DECODER_FILE, device)
        return cls(encoder, decoder, manifest, device, folder)

    def eval(self) -> StyleTransfer:
        self.encoder.eval()
        self.decoder.eval()
        return self

    def predict(self, batch: list[StylizeRequest]) -> list[Image.Image]:
        """One stylized RGB image per request, in order; each is the resized content's size."""
        with torch.inference_mode():
            return super().predict(batch)

    def to_network(self, image: Image.Image) -> torch.Tensor:
        return image_to_tensor(image, self.device)

    def to_picture(self, output: torch.Tensor) -> Image.Image:
        return tensor_to_image(output)

    def recoloured(self, style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        return coral(style[0], content[0]).clamp(0.0, 1.0).unsqueeze(0)

    def stylize(
        self,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        weights: list[float],
        alpha: float,
        keys: list[StyleKey | None] | None = None,
        manner: float | OwnManner | None = None,
    ) -> torch.Tensor:
        """The base's (``AdainPredictor.stylize``), on torch."""
        assert 0.0 <= alpha <= 1.0, f"alpha must be in [0, 1], got {alpha}"
        content_feat = self.encoder(content)  # (1, C4, H/8, W/8)
        keys = keys or [None] * len(styles)
        style_stats = [self._style_statistics(style, key) for style, key in zip(styles, keys, strict=True)]
        target = interpolate_statistics(content_feat, style_stats, weights)  # one style: plain AdaIN
        # alpha 0: the reconstruction, with no painting's own manner to measure
        resolved_manner = self.resolve_manner(styles, keys, weights, manner) if alpha else 0.0
        alpha, strength = applied(alpha, resolved_manner)  # a painting's own manner below 0 softens it
        blended = alpha * target + (1.0 - alpha) * content_feat
        if self.matching is None or strength == 0.0:
            assert self.matching is not None or not manner, "this artifact's decoder does not match"
            return self.decoder(blended).clamp(0.0, 1.0)  # (1, 3, H, W)
        matching = self.matching
        pairs = zip(styles, keys, strict=True)
        means, stds = mix_statistics([self._decoder_statistics(matching, s, k) for s, k in pairs], weights)
        return matching(blended, means, stds, content_feat.new_full((1, 1), strength))[0]

    def painting_statistics(self, style: torch.Tensor, key: StyleKey | None) -> PaintingStatistics:
        assert self.matching is not None, "an artifact with its own manner has a matching decoder"
        mean, std = self._style_statistics(style, key)
        means, stds = self._decoder_statistics(self.matching, style, key)
        return (_numpy(mean), _numpy(std)), (_numpy(means), _numpy(stds))

    def _style_statistics(self, style: torch.Tensor, key: StyleKey | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The style's relu4_1 (mean, std), each (1, C4, 1, 1): from the cache, else from the encoder."""
        return self.statistics.get(key, lambda: calc_mean_std(self.encoder(style)))

    def _decoder_statistics(
        self, matching: MatchingDecoder, style: torch.Tensor, key: StyleKey | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The (1, ΣC) means and stds of the decoder's own decoding of the style, at the matched layers."""
        return self.decoder_statistics.get(key, lambda: matching.statistics(self.encoder(style)))


def content_measure(folder: Path, manifest: Manifest, device: torch.device) -> ContentMeasure:
    """The artifact's ``ContentMeasure`` (from its NST network); ``ArtifactError`` when it has none."""
    network = nst_network_from_manifest(manifest)
    if network is None:
        raise ArtifactError(f"{manifest.name}/{manifest.version}: its own manner needs the NST network (attach-nst)")
    return ContentMeasure(load_frozen(network, folder, manifest, NST_NETWORK_FILE, device))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class _TorchNetworks:
    """own_manner.Networks over a torch predictor's networks and the reference decoder."""

    def __init__(self, transfer: StyleTransfer, reference: Decoder, measure: ContentMeasure) -> None:
        self.transfer = transfer
        self.reference = reference
        self.content_measure = measure

    def _run(self, module: torch.nn.Module, *arrays: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.transfer.device) for a in arrays]
            output = module(*tensors)
            return _numpy(output[0] if isinstance(output, tuple) else output)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self._run(self.transfer.encoder, images)

    def measure(self, images: np.ndarray) -> np.ndarray:
        return self._run(self.content_measure, images)

    def decode_reference(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self._run(self.reference, features), 0.0, 1.0)

    def decode_matched(
        self, features: np.ndarray, means: np.ndarray, stds: np.ndarray, strengths: np.ndarray
    ) -> np.ndarray:
        assert self.transfer.matching is not None, "only a matching decoder measures its own manner"
        return self._run(self.transfer.matching, features, means, stds, strengths)
