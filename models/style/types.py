"""What the style predictors take, and the AdaIN artifact's names and widths; torch-free."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.style.own_manner import OWN_KEY, OwnManner, OwnMannerSettings, own_manner_settings

ARCHITECTURE = "adain-vgg19-relu4_1"
ENCODER_FILE = "encoder.safetensors"
DECODER_FILE = "decoder.safetensors"
ENCODER_ONNX = "encoder.onnx"
DECODER_ONNX = "decoder.onnx"
MATCHING_DECODER_ONNX = "matching_decoder.onnx"  # when the artifact has decoder_matching (matching.py)

# Classical NST's loss weights, for the relu5_1 network's features (of order 1 through the aux heads; Grams
# divided by H·W, mean squared errors). Chosen on four held-out pairs at 256 px with a 30 s budget: content 2
# gave style losses 0.56-0.85x AdaIN's at content losses 0.6-0.72x; content 1 painted harder but let the
# content loss reach 1.6x AdaIN's.
CONTENT_WEIGHT = 2.0
STYLE_WEIGHT = 1.0
# On [0, 1] pixels with mean squared neighbour differences: just enough to damp high-frequency speckle.
TV_WEIGHT = 1.0


@dataclass(frozen=True)
class StylizeRequest:
    """One stylization: a content image, one or more styles mixed by ``weights``, and a strength ``alpha``.

    ``alpha`` in [0, 1] blends the AdaIN target (1) with the content's own features (0);
    ``preserve_color`` recolours each style to the content's colours first; the output's longer
    side is at most ``max_side``; ``manner`` in [0, 1] is how strongly the decoder matches the painting's own
    statistics at every scale (``models.style.matching``; ``OwnManner``: found for each painting,
    ``models.style.own_manner``; None: the artifact's default, 0 without matching).
    """

    content: Image.Image
    styles: tuple[Image.Image, ...]
    weights: tuple[float, ...]
    alpha: float
    preserve_color: bool
    max_side: int
    manner: float | OwnManner | None = None


def warmup_request() -> StylizeRequest:
    """A tiny request, so the first real one does not pay for lazy initialisation (either backend)."""
    tiny = Image.new("RGB", (32, 32), (128, 96, 64))
    return StylizeRequest(tiny, (tiny,), (1.0,), 1.0, False, 32)


@dataclass(frozen=True)
class NSTRequest:
    """One optimisation-based stylization; the output's longer side is at most ``max_side``."""

    content: Image.Image
    style: Image.Image
    iterations: int  # at most this many L-BFGS steps
    max_side: int
    max_seconds: float | None = None  # and at most this long
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = TV_WEIGHT
    stop: threading.Event | None = None  # set when nobody waits for the answer any more: NST ends at once


@dataclass(frozen=True)
class NSTResult:
    """An NST output, the optimiser steps it took and the seconds it ran."""

    image: Image.Image
    steps: int
    seconds: float


MATCHING_KEY = "decoder_matching"  # hyperparameters entry of an artifact whose decoder matches (matching.py)


@dataclass(frozen=True)
class MatchingSettings:
    """Decoder-side matching as an artifact records it: after which decoder ReLUs, how strongly, their widths."""

    layers: tuple[int, ...]
    strength: float  # the default manner (StylizeRequest.manner) when ``own`` is None
    channels: tuple[int, ...]
    own: OwnMannerSettings | None = None  # the default: each painting's own manner (models.style.own_manner)

    @property
    def default(self) -> float | OwnManner:
        """The manner a request that names none gets."""
        return OwnManner(self.own.content_bound) if self.own else self.strength

    @property
    def width(self) -> int:
        """ΣC: the length of the statistics vectors the decoder takes and returns."""
        return sum(self.channels)

    def as_entry(self) -> dict[str, object]:
        entry: dict[str, object] = {"layers": list(self.layers), "strength": self.strength}
        entry["channels"] = list(self.channels)
        return entry | ({OWN_KEY: self.own.as_entry()} if self.own else {})


def matching_settings(manifest: Manifest) -> MatchingSettings | None:
    """The artifact's decoder-side matching, or None when it decodes plainly; ``ArtifactError`` when malformed."""
    entry = manifest.hyperparameters.get(MATCHING_KEY)
    if entry is None:
        return None
    where = f"{manifest.name}/{manifest.version}"
    fields = entry if isinstance(entry, dict) else {}
    layers, strength, channels = fields.get("layers"), fields.get("strength"), fields.get("channels")

    def ints(value: object) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(i, int) and i >= 0 for i in value)

    if not (ints(layers) and ints(channels) and len(layers) == len(channels)):  # type: ignore[arg-type]
        raise ArtifactError(f"{where}: {MATCHING_KEY} must list decoder layers and as many channel counts")
    if not (isinstance(strength, int | float) and 0.0 <= strength <= 1.0):
        raise ArtifactError(f"{where}: {MATCHING_KEY}.strength must be in [0, 1], not {strength!r}")
    own = own_manner_settings(manifest, fields[OWN_KEY]) if OWN_KEY in fields else None
    return MatchingSettings(tuple(layers), float(strength), tuple(channels), own)  # type: ignore[arg-type]


def widths_from_manifest(manifest: Manifest) -> tuple[int, int, int, int]:
    """The encoder/decoder widths recorded in the manifest; an ``ArtifactError`` when absent or malformed."""
    where = f"{manifest.name}/{manifest.version}"
    if manifest.architecture != ARCHITECTURE:
        raise ArtifactError(f"{where}: architecture {manifest.architecture!r} is not {ARCHITECTURE!r}")
    widths = manifest.hyperparameters.get("widths")
    if not (isinstance(widths, list) and len(widths) == 4 and all(isinstance(w, int) and w > 0 for w in widths)):
        raise ArtifactError(f"{where}: hyperparameters.widths must be a list of 4 positive ints, not {widths!r}")
    return (widths[0], widths[1], widths[2], widths[3])
