"""What the torch and ONNX AdaIN predictors share: a request's way through their networks; torch-free.

Each predictor keeps its own arithmetic (torch tensors or numpy arrays) and networks, behind four methods:
``to_network`` and ``to_picture`` (an image in, one out), ``recoloured`` (``preserve_color``'s recolouring),
``stylize`` (the networks) and ``painting_statistics`` (what a painting's own manner is measured from). This base
turns a ``StylizeRequest`` into their ``stylize`` call, warms them up, remembers the gallery's styles and resolves a
request's manner (``models.style.own_manner``), once for both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from PIL import Image

from models.artifact import Manifest
from models.style.own_manner import OwnManner, PaintingManners, PaintingStatistics, resolved
from models.style.sizing import resize_for_network, to_served_size
from models.style.style_cache import StyleKey, request_style_keys, style_key
from models.style.types import StylizeRequest, warmup_request

ArrayT = TypeVar("ArrayT")  # torch.Tensor or numpy.ndarray: (B, 3, H, W) images, (B, C, h, w) features


class AdainPredictor(ABC, Generic[ArrayT]):
    """AdaIN predictor: ``predict(list[StylizeRequest]) -> list[PIL.Image.Image]`` (RGB), on ``ArrayT`` arrays."""

    manifest: Manifest
    default_manner: float | OwnManner  # the artifact's (``types.matching_settings``), 0 without matching
    painting_manners: PaintingManners | None  # where the artifact measures each painting's own manner

    @abstractmethod
    def to_network(self, image: Image.Image) -> ArrayT:
        """(1, 3, H, W) in [0, 1] of an RGB image already sized for the networks."""

    @abstractmethod
    def to_picture(self, output: ArrayT) -> Image.Image:
        """The RGB image of a (1, 3, H, W) output in [0, 1]."""

    @abstractmethod
    def recoloured(self, style: ArrayT, content: ArrayT) -> ArrayT:
        """``style`` (1, 3, Hs, Ws) given ``content``'s colour statistics (CORAL), in [0, 1]."""

    @abstractmethod
    def stylize(
        self,
        content: ArrayT,
        styles: list[ArrayT],
        weights: list[float],
        alpha: float,
        keys: list[StyleKey | None] | None = None,
        manner: float | OwnManner | None = None,
    ) -> ArrayT:
        """Decoded ``alpha``-blend of the (interpolated) AdaIN target and the content features, in [0, 1].

        ``keys`` name the styles in the statistics cache (None: compute them, cache nothing); ``manner`` the
        decoder-side matching's strength (``OwnManner``: each painting's own; None: the artifact's default; below
        0, as a painting's own manner may be, it lowers alpha instead: ``own_manner.applied``).
        """

    @abstractmethod
    def painting_statistics(self, style: ArrayT, key: StyleKey | None) -> PaintingStatistics:
        """The painting's relu4_1 statistics and its decoder statistics, in numpy (cached under ``key``)."""

    def predict(self, batch: list[StylizeRequest]) -> list[Image.Image]:
        """One stylized RGB image per request, in order; each is the resized content's size."""
        return [self._stylize_one(request) for request in batch]

    def warmup(self) -> None:
        self.predict([warmup_request()])

    def remember_styles(self, styles: list[Image.Image], max_side: int) -> None:
        """Encode ``styles`` now (the gallery, at load), so requests naming them at ``max_side`` skip the encoder.

        At the artifact's default manner (its decoder statistics too), except that a painting's own manner
        (own_manner.py) is measured at its first request, not at start-up."""
        content = Image.new("RGB", (32, 32))
        manner = 0.0 if isinstance(self.default_manner, OwnManner) else None
        self.predict([StylizeRequest(content, (style,), (1.0,), 1.0, False, max_side, manner) for style in styles])

    def preprocess(self, request: StylizeRequest) -> tuple[ArrayT, list[ArrayT]]:
        """Content (1, 3, H, W) and styles (1, 3, Hs, Ws), sized by ``max_side``; styles recoloured if asked."""
        content, _, styles = self._prepared(request)
        return content, styles

    def _prepared(self, request: StylizeRequest) -> tuple[ArrayT, list[ArrayT], list[ArrayT]]:
        """Content, the styles as the request gave them, and the styles painted with (``preprocess``'s), each sized
        by ``max_side``."""
        assert len(request.styles) == len(request.weights) > 0, "need one weight per style and at least one"
        content = self.to_network(resize_for_network(request.content, request.max_side))
        originals = [self.to_network(resize_for_network(s, request.max_side)) for s in request.styles]
        if not request.preserve_color:
            return content, originals, originals
        # the AdaIN release's preserve_color: give each style the content's colour statistics
        return content, originals, [self.recoloured(style, content) for style in originals]

    def _stylize_one(self, request: StylizeRequest) -> Image.Image:
        content, originals, styles = self._prepared(request)
        keys = request_style_keys(request)
        weights = list(request.weights)
        manner = request.manner
        if request.preserve_color and request.alpha and isinstance(self._manner(manner), OwnManner):
            # each painting's manner is its own, not the recoloured copy's: measured once, under its key
            own_keys: list[StyleKey | None] = [style_key(style, request.max_side) for style in request.styles]
            manner = self.resolve_manner(originals, own_keys, weights, manner)
        painted = self.to_picture(self.stylize(content, styles, weights, request.alpha, keys, manner))
        return to_served_size(painted, request.content.size, request.max_side)

    def _manner(self, manner: float | OwnManner | None) -> float | OwnManner:
        return self.default_manner if manner is None else manner

    def resolve_manner(
        self,
        styles: list[ArrayT],
        keys: list[StyleKey | None],
        weights: list[float],
        manner: float | OwnManner | None,
    ) -> float:
        """The manner for these styles: ``manner`` (None: the artifact's default); an ``OwnManner`` is each
        painting's own (own_manner.py), ``weights``-averaged over a mix, and below 0 where it softens them."""

        def statistics(index: int) -> PaintingStatistics:
            return self.painting_statistics(styles[index], keys[index])

        where = f"{self.manifest.name}/{self.manifest.version}"
        return resolved(self._manner(manner), self.painting_manners, where, keys, weights, statistics)
