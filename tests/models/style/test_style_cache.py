"""Style statistics are computed once per style and size: a known style skips the encoder, with the same output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.settings import EMBEDDED_STORE
from models.artifact import load_artifact
from models.onnx_backend import Runtime
from models.style.adain_numpy import calc_mean_std, interpolate_statistics, interpolate_styles
from models.style.onnx_predictor import OnnxStyleTransfer
from models.style.style_cache import StyleStatistics, style_key
from models.style.types import StylizeRequest
from tests.models.conftest import picture

ADAIN = EMBEDDED_STORE / "adain" / "v1"


class CountingSession:
    """An encoder session that counts the images it encodes."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.calls = 0

    def run(self, array: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.session.run(array)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def style_transfer() -> OnnxStyleTransfer:
    return OnnxStyleTransfer.from_artifact(ADAIN, load_artifact(ADAIN), "cpu", Runtime("onnxruntime"))


def test_interpolating_statistics_equals_interpolating_adain_targets() -> None:
    rng = np.random.default_rng(0)
    content = rng.normal(size=(1, 8, 5, 6)).astype(np.float32)
    styles = [rng.normal(2.0, 3.0, size=(1, 8, h, 4)).astype(np.float32) for h in (3, 7)]
    expected = interpolate_styles(content, styles, [3.0, 1.0])
    got = interpolate_statistics(content, [calc_mean_std(s) for s in styles], [3.0, 1.0])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_style_seen_before_skips_the_encoder_and_paints_the_same(style_transfer: OnnxStyleTransfer) -> None:
    style_transfer.statistics = StyleStatistics()
    encoder = CountingSession(style_transfer.encoder)
    style_transfer.encoder = encoder  # type: ignore[assignment]
    style = picture((96, 80), 1)
    requests = [StylizeRequest(picture((64, 48), seed), (style,), (1.0,), 1.0, False, 128) for seed in (2, 3)]
    first = style_transfer.predict(requests[:1])[0]
    assert encoder.calls == 2  # the content and the style
    style_transfer.predict(requests[1:])
    assert encoder.calls == 3  # the content only
    again = style_transfer.predict(requests[:1])[0]
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert (style_transfer.statistics.hits, style_transfer.statistics.misses) == (2, 1)


def test_recoloured_styles_are_never_cached(style_transfer: OnnxStyleTransfer) -> None:
    style_transfer.statistics = StyleStatistics()
    request = StylizeRequest(picture((64, 48), 4), (picture((64, 64), 5),), (1.0,), 1.0, True, 64)
    style_transfer.predict([request, request])
    assert len(style_transfer.statistics) == 0


def test_the_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache: StyleStatistics[int] = StyleStatistics(capacity=2)
    keys = [style_key(Image.new("RGB", (32, 32), (i, 0, 0)), 64) for i in range(3)]
    for index, key in enumerate(keys[:2]):
        cache.get(key, lambda index=index: (index, index))
    cache.get(keys[0], lambda: (9, 9))  # a hit: keys[0] is now the most recent
    cache.get(keys[2], lambda: (2, 2))  # evicts keys[1]
    assert len(cache) == 2
    assert cache.get(keys[0], lambda: (9, 9)) == (0, 0)
    assert cache.get(keys[1], lambda: (7, 7)) == (7, 7)  # computed again


def test_a_style_shares_its_entry_for_every_size_bound_it_fits_under() -> None:
    style = Image.new("RGB", (256, 192), (10, 20, 30))
    assert style_key(style, 256) == style_key(style, 1024)
    assert style_key(style, 128) != style_key(style, 256)
    assert style_key(style, 256) != style_key(Image.new("RGB", (256, 192), (10, 20, 31)), 256)
