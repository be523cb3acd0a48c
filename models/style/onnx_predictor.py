"""OnnxStyleTransfer: AdaIN with the exported encoder and decoder on ONNX Runtime or OpenVINO, its math in numpy.

Torch-free. ``encoder.onnx`` maps (B, 3, H, W) images in [0, 1] to relu4_1 features and ``decoder.onnx``
maps features back to images, both with dynamic batch and sides; the AdaIN statistics, the style
interpolation, the alpha blend and the CORAL recolouring run in numpy (``models.style.adain_numpy``).
Classical NST needs gradients and stays on the torch backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.onnx_backend import NetworkSession, Runtime, open_session
from models.style.adain_numpy import calc_mean_std, coral, interpolate_statistics, mix_statistics
from models.style.adain_requests import AdainPredictor
from models.style.own_manner import (
    CONTENT_MEASURE_ONNX,
    REFERENCE_DECODER,
    OwnManner,
    PaintingManners,
    PaintingStatistics,
    applied,
)
from models.style.sizing import array_to_image, image_to_array
from models.style.style_cache import StyleKey, StyleStatistics
from models.style.types import (
    ARCHITECTURE,
    DECODER_ONNX,
    ENCODER_ONNX,
    MATCHING_DECODER_ONNX,
    matching_settings,
)


class OnnxStyleTransfer(AdainPredictor[np.ndarray]):
    """AdaIN predictor on an ONNX engine: ``predict(list[StylizeRequest]) -> list[PIL.Image.Image]`` (RGB)."""

    def __init__(
        self,
        encoder: NetworkSession,
        decoder: NetworkSession,
        manifest: Manifest,
        matching: NetworkSession | None = None,
        painting_manners: tuple[Path, NetworkSession, NetworkSession] | None = None,
    ) -> None:
        """``matching``: the artifact's matching decoder (``models.style.matching``), when it has one;
        ``painting_manners``: the artifact's folder, its reference decoder and its content measure, when it measures
        each painting's own manner (``models.style.own_manner``)."""
        self.encoder = encoder
        self.decoder = decoder
        self.manifest = manifest
        self.statistics: StyleStatistics[np.ndarray] = StyleStatistics()
        self.decoder_statistics: StyleStatistics[np.ndarray] = StyleStatistics()  # filled when manner > 0
        self.matching = matching
        settings = matching_settings(manifest)
        self.default_manner: float | OwnManner = settings.default if settings else 0.0
        self.matching_width = settings.width if settings else 0
        self.painting_manners: PaintingManners | None = None
        if settings and settings.own:
            if painting_manners is None or matching is None:
                where = f"{manifest.name}/{manifest.version}"
                raise ArtifactError(f"{where}: its own manner needs the matching and reference decoders")
            folder, reference, measure = painting_manners
            networks = _OnnxNetworks(encoder, matching, reference, measure)
            self.painting_manners = PaintingManners.from_artifact(folder, settings.own, networks)

    @classmethod
    def from_artifact(
        cls, folder: Path, manifest: Manifest, device: str = "cpu", runtime: Runtime | None = None
    ) -> OnnxStyleTransfer:
        """Open the artifact's ``encoder.onnx`` and ``decoder.onnx`` on ``device`` (``cpu``, ``cuda``, ``cuda:N``)."""
        if manifest.architecture != ARCHITECTURE:
            where = f"{manifest.name}/{manifest.version}"
            raise ArtifactError(f"{where}: architecture {manifest.architecture!r} is not {ARCHITECTURE!r}")
        encoder = open_session(folder, manifest, ENCODER_ONNX, device, runtime)
        decoder = open_session(folder, manifest, DECODER_ONNX, device, runtime)
        settings = matching_settings(manifest)
        matching = open_session(folder, manifest, MATCHING_DECODER_ONNX, device, runtime) if settings else None
        reference = None
        if settings and settings.own:
            decoder_onnx = open_session(folder, manifest, f"{REFERENCE_DECODER}.onnx", device, runtime)
            reference = (folder, decoder_onnx, open_session(folder, manifest, CONTENT_MEASURE_ONNX, device, runtime))
        return cls(encoder, decoder, manifest, matching, reference)

    def eval(self) -> OnnxStyleTransfer:
        return self  # inference sessions have no training mode

    def to_network(self, image: Image.Image) -> np.ndarray:
        return image_to_array(image)

    def to_picture(self, output: np.ndarray) -> Image.Image:
        return array_to_image(output)

    def recoloured(self, style: np.ndarray, content: np.ndarray) -> np.ndarray:
        return np.clip(coral(style[0], content[0]), 0.0, 1.0)[None]

    def stylize(
        self,
        content: np.ndarray,
        styles: list[np.ndarray],
        weights: list[float],
        alpha: float,
        keys: list[StyleKey | None] | None = None,
        manner: float | OwnManner | None = None,
    ) -> np.ndarray:
        """The base's (``AdainPredictor.stylize``), on an ONNX engine."""
        assert 0.0 <= alpha <= 1.0, f"alpha must be in [0, 1], got {alpha}"
        content_feat = self.encoder.run(content)  # (1, C4, H/8, W/8)
        keys = keys or [None] * len(styles)
        style_stats = [self._style_statistics(style, key) for style, key in zip(styles, keys, strict=True)]
        target = interpolate_statistics(content_feat, style_stats, weights)  # one style: plain AdaIN
        # alpha 0: the reconstruction, with no painting's own manner to measure
        resolved_manner = self.resolve_manner(styles, keys, weights, manner) if alpha else 0.0
        alpha, strength = applied(alpha, resolved_manner)  # a painting's own manner below 0 softens it
        blended = alpha * target + (1.0 - alpha) * content_feat
        if self.matching is None or strength == 0.0:
            assert self.matching is not None or not manner, "this artifact's decoder does not match"
            return np.clip(self.decoder.run(blended), 0.0, 1.0)  # (1, 3, H, W)
        matching = self.matching
        pairs = zip(styles, keys, strict=True)
        means, stds = mix_statistics([self._decoder_statistics(matching, s, k) for s, k in pairs], weights)
        return matching.run_inputs([blended, means, stds, np.full((1, 1), strength, np.float32)])[0]

    def painting_statistics(self, style: np.ndarray, key: StyleKey | None) -> PaintingStatistics:
        assert self.matching is not None, "an artifact with its own manner has a matching decoder"
        return self._style_statistics(style, key), self._decoder_statistics(self.matching, style, key)

    def _style_statistics(self, style: np.ndarray, key: StyleKey | None) -> tuple[np.ndarray, np.ndarray]:
        """The style's relu4_1 (mean, std), each (1, C4, 1, 1): from the cache, else from the encoder."""
        return self.statistics.get(key, lambda: calc_mean_std(self.encoder.run(style)))

    def _decoder_statistics(
        self, matching: NetworkSession, style: np.ndarray, key: StyleKey | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (1, ΣC) means and stds of the decoder's own decoding of the style, at the matched layers."""

        def compute() -> tuple[np.ndarray, np.ndarray]:
            zeros = np.zeros((1, self.matching_width), np.float32)
            features = self.encoder.run(style)
            _, means, stds = matching.run_inputs([features, zeros, zeros + 1.0, np.zeros((1, 1), np.float32)])
            return means, stds

        return self.decoder_statistics.get(key, compute)


class _OnnxNetworks:
    """own_manner.Networks over the artifact's ONNX sessions."""

    def __init__(
        self, encoder: NetworkSession, matching: NetworkSession, reference: NetworkSession, measure: NetworkSession
    ) -> None:
        self.encoder, self.matching, self.reference, self.content_measure = encoder, matching, reference, measure

    def measure(self, images: np.ndarray) -> np.ndarray:
        return self.content_measure.run(images)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.encoder.run(images)

    def decode_reference(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.reference.run(features), 0.0, 1.0)

    def decode_matched(
        self, features: np.ndarray, means: np.ndarray, stds: np.ndarray, strengths: np.ndarray
    ) -> np.ndarray:
        return self.matching.run_inputs([features, means, stds, strengths])[0]
