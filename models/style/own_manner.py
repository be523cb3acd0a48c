"""A painting's own manner: the strongest decoder-side matching that still keeps the photo, found per painting.

One ``manner`` for every painting (``models.style.matching``) spends its margin unevenly: how much a photo melts
depends far more on the painting than on the photo (per painting, the median content-loss ratio to plain AdaIN
ran from 1.0 to 2.9 at one manner; ``docs/style.md``). So an artifact may instead bound the content: for each
painting, on a few reference photos it carries (public-domain and CC0 photos, ``reference_*.png``), the decoder
stylizes at every manner of a grid, and the painting's manner is the largest one whose median content-loss ratio
to plain AdaIN (the imported reconstruction decoder the artifact also carries, ``reference_decoder``) stays
within ``content_bound``, interpolated between the grid's points. Paintings that keep the photo get their
manner in full; those that melt it get less, down to 0, and below: a manner ``m < 0`` on the grid softens the
painting instead, alpha times ``1 + m`` at no matching (``applied``). Some paintings melt photos at full alpha
whatever the manner, and for those a lower alpha gives back much content for little style (``docs/style.md``,
"A strength for each painting"), where for the paintings that keep the photo it is the other way round.

The content loss here is the one evaluation reports (``models.style.evaluate``): the mean squared difference of
the output's relu4_1 features and the photo's, through the compressed VGG19 to relu5_1 and its ``_aux`` head (the
network NST uses, which the artifact carries; ``models.style.nst_network.ContentMeasure``). Through the AdaIN
encoder instead, the ratios ranked the paintings less well. Torch-free: the predictors run the networks
(``Networks``), this module the arithmetic, in numpy; each predictor caches a painting's ratios beside its
statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, TypeGuard

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.style.adain_numpy import interpolate_statistics
from models.style.sizing import image_to_array
from models.style.style_cache import StyleCache, StyleKey

OWN_KEY = "own_manner"  # in hyperparameters.decoder_matching
REFERENCE_DECODER = "reference_decoder"  # .safetensors (torch) and .onnx (ONNX engines) in the artifact
CONTENT_MEASURE_ONNX = "content_measure.onnx"  # nst_network.ContentMeasure, exported for the ONNX engines
REFERENCE_SIDE = 256  # the reference photos are center squares of this side (the evaluation's size)
# the default grid: alpha down to 0.6 (manners below 0) and matching up to 0.8, 7 decodings of each photo
MANNERS = (-0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8)
SOFTEST = -0.9  # the lowest manner a grid may hold: alpha times 0.1


@dataclass(frozen=True)
class OwnManner:
    """A request's manner found per painting (``own_manner``) with this bound on the content ratio."""

    content_bound: float


@dataclass(frozen=True)
class OwnMannerSettings:
    """What an artifact records under ``decoder_matching.own_manner``."""

    content_bound: float
    manners: tuple[float, ...]  # ascending through 0 (valid_grid); below 0: a softer alpha (applied)
    references: tuple[str, ...]  # artifact paths of the reference photos (RGB, REFERENCE_SIDE squares)

    def as_entry(self) -> dict[str, object]:
        return {"content_bound": self.content_bound, "manners": list(self.manners), "references": list(self.references)}


def valid_bound(bound: object) -> TypeGuard[float]:
    """A content bound: a positive number under 100 (not a bool)."""
    return isinstance(bound, int | float) and not isinstance(bound, bool) and 0.0 < bound < 100.0


def valid_grid(grid: Sequence[object]) -> bool:
    """Manners ascending, 0 among them, from ``SOFTEST`` at the least to 1 at most; at least two."""
    numbers = [m for m in grid if isinstance(m, int | float) and not isinstance(m, bool)]
    ascending = numbers == sorted(set(numbers))
    return len(numbers) == len(grid) >= 2 and ascending and 0 in numbers and numbers[0] >= SOFTEST and numbers[-1] <= 1


def applied(alpha: float, manner: float) -> tuple[float, float]:
    """The (alpha, matching strength) a request's ``alpha`` and a resolved ``manner`` decode with: a manner
    ``m >= 0`` matches at ``alpha * m``; one below 0 (a painting's own, on a grid that goes there) softens the
    painting to alpha ``alpha * (1 + m)`` with no matching."""
    softened = alpha * (1.0 + min(manner, 0.0))
    return softened, softened * max(manner, 0.0)


def own_manner_settings(manifest: Manifest, entry: object) -> OwnMannerSettings:
    """``decoder_matching.own_manner`` checked; ``ArtifactError`` names what is wrong."""
    where = f"{manifest.name}/{manifest.version}: decoder_matching.{OWN_KEY}"
    fields = entry if isinstance(entry, dict) else {}
    bound, manners, references = fields.get("content_bound"), fields.get("manners"), fields.get("references")
    if not valid_bound(bound):
        raise ArtifactError(f"{where}.content_bound must be a positive number, not {bound!r}")
    grid = manners if isinstance(manners, list) else []
    if not valid_grid(grid):
        raise ArtifactError(f"{where}.manners must ascend through 0, from {SOFTEST:g} to 1, not {manners!r}")
    named = {entry.path for entry in manifest.files}
    if not (isinstance(references, list) and references and all(r in named for r in references)):
        raise ArtifactError(f"{where}.references must name the artifact's reference photos, not {references!r}")
    return OwnMannerSettings(float(bound), tuple(float(m) for m in grid), tuple(references))


class Networks(Protocol):
    """What the measurement needs of a predictor, in numpy (B, ...) float32 arrays."""

    def encode(self, images: np.ndarray) -> np.ndarray: ...  # (B, 3, H, W) in [0, 1] -> (B, C4, H/8, W/8)

    def measure(self, images: np.ndarray) -> np.ndarray: ...  # (B, 3, H, W) -> the content loss's features

    def decode_reference(self, features: np.ndarray) -> np.ndarray: ...  # plain AdaIN's decoder, clamped

    def decode_matched(
        self, features: np.ndarray, means: np.ndarray, stds: np.ndarray, strengths: np.ndarray
    ) -> np.ndarray: ...  # (B, C4, h, w), (B, ΣC), (B, ΣC), (B, 1) -> (B, 3, H, W) clamped


def content_ratios(
    networks: Networks,
    references: tuple[np.ndarray, np.ndarray],
    style_statistics: tuple[np.ndarray, np.ndarray],
    decoder_statistics: tuple[np.ndarray, np.ndarray],
    manners: Sequence[float],
) -> np.ndarray:
    """(len(manners),) median over the reference photos of the content loss at each manner / plain AdaIN's.

    ``references``: the photos' encoder features (K, C4, s, s) and their measured features (``Networks.measure``);
    the painting's relu4_1 statistics (each (1, C4, 1, 1)) and its decoder statistics (each (1, ΣC))."""
    features, measured = references
    count = len(features)
    targets = np.concatenate([interpolate_statistics(f[None], [style_statistics], [1.0]) for f in features])
    plain_loss = _mse(networks.measure(networks.decode_reference(targets)), measured)  # (K,)
    grid = len(manners)
    settings = [applied(1.0, manner) for manner in manners]
    blended = np.concatenate([alpha * targets + (1.0 - alpha) * features for alpha, _ in settings])  # manner-major
    strengths = np.repeat(np.asarray([strength for _, strength in settings], np.float32), count)[:, None]  # (M·K, 1)
    means, stds = (np.repeat(s.astype(np.float32), grid * count, axis=0) for s in decoder_statistics)
    outputs = networks.decode_matched(blended.astype(np.float32), means, stds, strengths)
    losses = _mse(networks.measure(outputs), np.tile(measured, (grid, 1, 1, 1))).reshape(grid, count)
    return np.median(losses / np.maximum(plain_loss, 1e-12)[None], axis=1)


# a painting's relu4_1 (mean, std), each (1, C4, 1, 1), and its decoder statistics (means, stds), each (1, ΣC)
PaintingStatistics = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class PaintingManners:
    """Each painting's content ratios over the manner grid, measured once (cached by the style's key, like its
    statistics); ``manner(key, bound, statistics)`` the painting's manner for ``bound``."""

    def __init__(self, settings: OwnMannerSettings, references: np.ndarray, networks: Networks) -> None:
        self.settings = settings
        self.references = references  # (K, 3, S, S) in [0, 1]
        self.networks = networks
        self.ratios: StyleCache[np.ndarray] = StyleCache()
        self._features: tuple[np.ndarray, np.ndarray] | None = None  # the photos' encoded and measured features

    @classmethod
    def from_artifact(cls, folder: Path, settings: OwnMannerSettings, networks: Networks) -> PaintingManners:
        return cls(settings, load_references(folder, settings), networks)

    def manner(self, key: StyleKey | None, bound: float, statistics: Callable[[], PaintingStatistics]) -> float:
        """The painting's manner under ``bound``; ``statistics`` gives its statistics when not yet measured."""
        ratios = self.ratios.get(key, lambda: self.measure(*statistics()))
        return choose_manner(ratios.tolist(), self.settings.manners, bound)

    def mixed(
        self,
        keys: Sequence[StyleKey | None],
        weights: Sequence[float],
        bound: float,
        statistics: Callable[[int], PaintingStatistics],
    ) -> float:
        """The ``weights``-average (normalised) of the manners of a mix's paintings; ``statistics(i)`` gives the
        i-th painting's. The average runs on the one axis: a painting softened to -0.4 mixed half and half with
        one matched at 0.4 paints at 0, full alpha and no matching, between the two."""
        total = float(sum(weights))
        # a painting weighted 0 adds nothing: it is not measured
        manners = [self.manner(k, bound, partial(statistics, i)) if weights[i] else 0.0 for i, k in enumerate(keys)]
        return sum(weight / total * manner for weight, manner in zip(weights, manners, strict=True))

    def measure(
        self, style_statistics: tuple[np.ndarray, np.ndarray], decoder_statistics: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """``content_ratios`` on the reference photos at the settings' manners."""
        if self._features is None:
            self._features = self.networks.encode(self.references), self.networks.measure(self.references)
        return content_ratios(
            self.networks,
            self._features,
            style_statistics,
            decoder_statistics,
            self.settings.manners,
        )


def resolved(
    manner: float | OwnManner,
    painting_manners: PaintingManners | None,
    where: str,
    keys: Sequence[StyleKey | None],
    weights: Sequence[float],
    statistics: Callable[[int], PaintingStatistics],
) -> float:
    """A request's manner (``applied`` turns it into an alpha and a matching strength): ``manner`` itself, or for
    an ``OwnManner`` the (``weights``-averaged) own manners of its paintings, ``statistics(i)`` giving the i-th
    painting's; ``ArtifactError`` when the artifact (``where``) measures none."""
    if not isinstance(manner, OwnManner):
        return manner
    if painting_manners is None:
        raise ArtifactError(f"{where} measures no painting's own manner")
    return painting_manners.mixed(keys, weights, manner.content_bound, statistics)


def load_references(folder: Path, settings: OwnMannerSettings) -> np.ndarray:
    """The artifact's reference photos (K, 3, S, S), float32 in [0, 1]; ``ArtifactError`` when one is not a square
    of ``REFERENCE_SIDE``."""
    arrays = []
    for path in settings.references:
        with Image.open(folder / path) as image:
            if image.size != (REFERENCE_SIDE, REFERENCE_SIDE):
                raise ArtifactError(f"{path}: a reference photo must be {REFERENCE_SIDE} px square, not {image.size}")
            arrays.append(image_to_array(image.convert("RGB")))
    return np.concatenate(arrays)


def choose_manner(ratios: Sequence[float], manners: Sequence[float], bound: float) -> float:
    """The largest manner whose ratio stays within ``bound``, walking up the grid until the first that does not
    and interpolating linearly toward it; the grid's lowest when even that one exceeds the bound."""
    if ratios[0] > bound:
        return float(manners[0])
    for index in range(1, len(manners)):
        if ratios[index] > bound:
            low, high = ratios[index - 1], ratios[index]
            share = (bound - low) / (high - low)  # high > bound >= low
            return float(manners[index - 1] + share * (manners[index] - manners[index - 1]))
    return float(manners[-1])


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float32) - b) ** 2).reshape(len(a), -1).mean(axis=1)
