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
from models.style.adain_numpy import calc_mean_std, coral, interpolate_statistics
from models.style.sizing import array_to_image, image_to_array, resize_for_network
from models.style.style_cache import StyleKey, StyleStatistics, request_style_keys
from models.style.types import ARCHITECTURE, DECODER_ONNX, ENCODER_ONNX, StylizeRequest, warmup_request


class OnnxStyleTransfer:
    """AdaIN predictor on an ONNX engine: ``predict(list[StylizeRequest]) -> list[PIL.Image.Image]`` (RGB)."""

    def __init__(self, encoder: NetworkSession, decoder: NetworkSession, manifest: Manifest) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.manifest = manifest
        self.statistics: StyleStatistics[np.ndarray] = StyleStatistics()

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
        return cls(encoder, decoder, manifest)

    def eval(self) -> OnnxStyleTransfer:
        return self  # inference sessions have no training mode

    def predict(self, batch: list[StylizeRequest]) -> list[Image.Image]:
        """One stylized RGB image per request, in order; each is the resized content's size."""
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
        return array_to_image(self.stylize(content, styles, list(request.weights), request.alpha, keys))

    def preprocess(self, request: StylizeRequest) -> tuple[np.ndarray, list[np.ndarray]]:
        """Content (1, 3, H, W) and styles (1, 3, Hs, Ws), sized by ``max_side``; styles recoloured if asked."""
        assert len(request.styles) == len(request.weights) > 0, "need one weight per style and at least one"
        content = image_to_array(resize_for_network(request.content, request.max_side))
        styles = [image_to_array(resize_for_network(s, request.max_side)) for s in request.styles]
        if request.preserve_color:
            # the AdaIN release's preserve_color: give each style the content's colour statistics
            styles = [np.clip(coral(style[0], content[0]), 0.0, 1.0)[None] for style in styles]
        return content, styles

    def stylize(
        self,
        content: np.ndarray,
        styles: list[np.ndarray],
        weights: list[float],
        alpha: float,
        keys: list[StyleKey | None] | None = None,
    ) -> np.ndarray:
        """Decoded ``alpha``-blend of the (interpolated) AdaIN target and the content features, in [0, 1].

        ``keys`` name the styles in the statistics cache (None: compute them, cache nothing).
        """
        assert 0.0 <= alpha <= 1.0, f"alpha must be in [0, 1], got {alpha}"
        content_feat = self.encoder.run(content)  # (1, C4, H/8, W/8)
        keys = keys or [None] * len(styles)
        style_stats = [self._style_statistics(style, key) for style, key in zip(styles, keys, strict=True)]
        target = interpolate_statistics(content_feat, style_stats, weights)  # one style: plain AdaIN
        blended = alpha * target + (1.0 - alpha) * content_feat
        return np.clip(self.decoder.run(blended), 0.0, 1.0)  # (1, 3, H, W)

    def _style_statistics(self, style: np.ndarray, key: StyleKey | None) -> tuple[np.ndarray, np.ndarray]:
        """The style's relu4_1 (mean, std), each (1, C4, 1, 1): from the cache, else from the encoder."""
        return self.statistics.get(key, lambda: calc_mean_std(self.encoder.run(style)))
