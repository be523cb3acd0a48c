"""The numpy AdaIN math of the ONNX backend matches the torch version it twins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.style import adain, adain_numpy


def _features(seed: int, shape: tuple[int, ...], scale: float, shift: float) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)


def test_calc_mean_std_matches_torch_including_flat_channels() -> None:
    feat = _features(0, (2, 5, 6, 7), 3.0, 1.0)
    feat[0, 1] = 0.25  # a flat channel: eps decides its std
    mean, std = adain_numpy.calc_mean_std(feat)
    torch_mean, torch_std = adain.calc_mean_std(_torch(feat))
    assert mean.dtype == std.dtype == np.float32 and mean.shape == std.shape == (2, 5, 1, 1)
    np.testing.assert_allclose(mean, torch_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(std, torch_std.numpy(), rtol=1e-5)


def test_adain_matches_torch_and_gives_the_style_statistics() -> None:
    content, style = _features(1, (1, 8, 6, 5), 3.0, 1.0), _features(2, (1, 8, 9, 4), 0.5, -2.0)
    output = adain_numpy.adaptive_instance_normalization(content, style)
    expected = adain.adaptive_instance_normalization(_torch(content), _torch(style)).numpy()
    np.testing.assert_allclose(output, expected, atol=1e-5)
    np.testing.assert_allclose(adain_numpy.calc_mean_std(output)[0], adain_numpy.calc_mean_std(style)[0], atol=1e-5)


def test_interpolate_styles_matches_torch_for_uneven_weights() -> None:
    content = _features(3, (1, 6, 4, 5), 1.0, 0.0)
    styles = [_features(4, (1, 6, 7, 7), 2.0, 1.0), _features(5, (1, 6, 3, 8), 0.3, -1.0)]
    output = adain_numpy.interpolate_styles(content, styles, [3.0, 1.0])
    expected = adain.interpolate_styles(_torch(content), [_torch(s) for s in styles], [3.0, 1.0]).numpy()
    np.testing.assert_allclose(output, expected, atol=1e-5)


@pytest.mark.parametrize("seed", [6, 7])
def test_coral_matches_torch_on_correlated_colours(seed: int) -> None:
    rng = np.random.default_rng(seed)
    source = rng.random((3, 24, 20), dtype=np.float32)
    mixing = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=np.float32)
    target = ((mixing @ rng.random((3, 30 * 18), dtype=np.float32)).reshape(3, 30, 18) * 0.5 + 0.2).astype(np.float32)
    output = adain_numpy.coral(source, target)
    assert output.dtype == np.float32 and output.shape == source.shape
    np.testing.assert_allclose(output, adain.coral(_torch(source), _torch(target)).numpy(), atol=1e-4)


def test_coral_of_a_flat_image_stays_finite() -> None:
    flat, target = np.full((3, 8, 8), 0.5, dtype=np.float32), _features(8, (3, 8, 8), 0.2, 0.5)
    assert np.isfinite(adain_numpy.coral(flat, target)).all()
