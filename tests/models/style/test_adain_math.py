"""AdaIN's tensor math: statistics matching, CORAL colour transfer, style interpolation."""

from __future__ import annotations

import torch

from models.style.adain import adaptive_instance_normalization, calc_mean_std, coral, interpolate_styles


def _features(seed: int, shape: tuple[int, ...], scale: float, shift: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * scale + shift


def test_calc_mean_std_gives_per_sample_per_channel_statistics() -> None:
    feat = _features(0, (2, 5, 6, 7), 3.0, 1.0)
    mean, std = calc_mean_std(feat)
    assert mean.shape == std.shape == (2, 5, 1, 1)
    torch.testing.assert_close(mean[..., 0, 0], feat.mean(dim=(2, 3)))
    torch.testing.assert_close(std[..., 0, 0], feat.std(dim=(2, 3), unbiased=False), atol=1e-4, rtol=1e-4)


def test_calc_mean_std_of_a_flat_or_single_pixel_map_is_finite_and_positive() -> None:
    for feat in (torch.ones(1, 3, 4, 4), torch.rand(1, 3, 1, 1)):
        _, std = calc_mean_std(feat)
        assert torch.isfinite(std).all() and (std > 0).all()


def test_adain_output_has_the_style_channel_mean_and_std() -> None:
    content = _features(1, (2, 8, 6, 5), 3.0, 1.0)
    style = _features(2, (2, 8, 9, 4), 0.5, -2.0) * torch.linspace(0.5, 2.0, 8).view(1, 8, 1, 1)
    output = adaptive_instance_normalization(content, style)
    out_mean, out_std = calc_mean_std(output)
    style_mean, style_std = calc_mean_std(style)
    torch.testing.assert_close(out_mean, style_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out_std, style_std, atol=1e-3, rtol=1e-3)


def test_adain_keeps_the_content_shape_and_its_normalised_pattern() -> None:
    content = _features(3, (1, 4, 6, 6), 2.0, 0.5)
    output = adaptive_instance_normalization(content, _features(4, (1, 4, 3, 3), 1.0, 0.0))
    assert output.shape == content.shape
    correlation = torch.corrcoef(torch.stack([content.flatten(2)[0, 0], output.flatten(2)[0, 0]]))[0, 1]
    assert correlation > 0.999  # a per-channel affine map of the content


def test_coral_gives_the_source_the_target_channel_mean_and_covariance() -> None:
    source = torch.rand(3, 24, 20)
    mixing = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    target = (mixing @ torch.rand(3, 30 * 18)).view(3, 30, 18) * 0.5 + 0.2  # correlated channels
    output = coral(source, target)
    assert output.shape == source.shape
    torch.testing.assert_close(output.mean(dim=(1, 2)), target.mean(dim=(1, 2)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.cov(output.flatten(1)), torch.cov(target.flatten(1)), atol=2e-4, rtol=0.02)


def test_interpolating_with_weights_one_and_zero_equals_the_single_style() -> None:
    content = _features(5, (1, 6, 4, 5), 1.0, 0.0)
    first, second = _features(6, (1, 6, 7, 7), 2.0, 1.0), _features(7, (1, 6, 3, 8), 0.3, -1.0)
    mixed = interpolate_styles(content, [first, second], [1.0, 0.0])
    torch.testing.assert_close(mixed, adaptive_instance_normalization(content, first))


def test_interpolation_weights_are_normalised_to_sum_to_one() -> None:
    content = _features(8, (1, 6, 4, 5), 1.0, 0.0)
    styles = [_features(9, (1, 6, 5, 5), 2.0, 1.0), _features(10, (1, 6, 5, 5), 0.3, -1.0)]
    halves = 0.5 * sum(adaptive_instance_normalization(content, s) for s in styles)
    torch.testing.assert_close(interpolate_styles(content, styles, [3.0, 3.0]), halves)
