"""A bounded LRU of AdaIN style statistics, keyed by the style image's pixels and the request's size bound.

AdaIN uses a style only through the per-channel mean and standard deviation of its encoder features, and
a style resized for a request depends only on its pixels and the size it is resized to: so a style seen before (every
gallery style after the first request, an uploaded style sent again) skips the encoder. Torch-free: the
torch and the ONNX predictors each keep one, holding their own tensor or array type.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from PIL import Image

from models.style.sizing import fit_size

if TYPE_CHECKING:  # types imports own_manner, which keeps its cache here
    from models.style.types import StylizeRequest

T = TypeVar("T")
V = TypeVar("V")
StyleKey = tuple[bytes, tuple[int, int]]
# An entry is two (1, C, 1, 1) vectors (C = 512 at most): a few kilobytes, so a thousand cost a few megabytes.
CAPACITY = 1024


def style_key(image: Image.Image, max_side: int) -> StyleKey:
    """What the style's statistics depend on: a digest of its mode, size and pixels, and the size the network
    sees it at (so a 256 px gallery style shares one entry for every ``max_side`` >= 256)."""
    digest = hashlib.blake2b(f"{image.mode}:{image.width}x{image.height}".encode(), digest_size=20)
    digest.update(image.tobytes())
    return digest.digest(), fit_size(image.width, image.height, max_side)


def request_style_keys(request: StylizeRequest) -> list[StyleKey | None]:
    """Each style's cache key; None when ``preserve_color`` recolours it to this request's content."""
    if request.preserve_color:
        return [None] * len(request.styles)
    return [style_key(style, request.max_side) for style in request.styles]


class StyleCache(Generic[V]):
    """``get(key, compute)``: the cached entry, else ``compute()``'s, remembered; least recently used go first.

    Not thread-safe, like the predictor that owns it (one thread at a time).
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        assert capacity >= 0, f"capacity must be >= 0 (0: cache nothing), got {capacity}"
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[StyleKey, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: StyleKey | None, compute: Callable[[], V]) -> V:
        """The entry for ``key``; ``key=None`` (a style recoloured per request) computes without caching."""
        if key is None or self.capacity == 0:
            return compute()
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        entry = compute()
        self._entries[key] = entry
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry


class StyleStatistics(StyleCache[tuple[T, T]], Generic[T]):
    """A style's pair of statistics (means, stds) of one array type, cached."""
