"""Classical (Gatys) neural style transfer: its losses, its optimisation, its predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from models.artifact import load_artifact
from models.style.network import VGGEncoder
from models.style.nst import NeuralStyleTransfer, NSTRequest, gram_matrix, nst_losses, optimise_image, total_variation
from models.style.starter import make_untrained_style

SLIM = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def encoder() -> VGGEncoder:
    torch.manual_seed(0)
    frozen = VGGEncoder(SLIM).eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return frozen


def _smooth_image(seed: int, side: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, side // 4, side // 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def test_gram_matrix_is_symmetric_and_independent_of_the_spatial_size() -> None:
    feat = torch.rand(2, 5, 4, 6)
    gram = gram_matrix(feat)
    assert gram.shape == (2, 5, 5)
    torch.testing.assert_close(gram, gram.transpose(1, 2))
    torch.testing.assert_close(gram_matrix(feat.repeat(1, 1, 2, 3)), gram)  # tiling keeps channel correlations


def test_total_variation_is_zero_for_a_flat_image_and_grows_with_noise() -> None:
    flat = torch.full((1, 3, 16, 16), 0.4)
    assert float(total_variation(flat)) == 0.0
    assert float(total_variation(flat + 0.01 * torch.randn_like(flat))) < float(total_variation(torch.rand_like(flat)))


def test_content_and_style_losses_vanish_when_the_image_is_both_targets(encoder: VGGEncoder) -> None:
    image = _smooth_image(1)
    with torch.no_grad():
        grams = [gram_matrix(f) for f in encoder.encode_with_intermediate(image)]
        same = nst_losses(encoder, image, encoder(image), grams, (1.0, 1e3, 10.0))
        other = nst_losses(encoder, _smooth_image(2), encoder(image), grams, (1.0, 1e3, 10.0))
    assert float(same.content) == 0.0 and float(same.style) < 1e-9
    assert float(other.content) > 0.0 and float(other.style) > 0.0


def test_nst_loss_decreases_over_exactly_the_requested_adam_steps(encoder: VGGEncoder) -> None:
    content, style = _smooth_image(3), _smooth_image(4)
    image, history = optimise_image(encoder, content, style, iterations=8)
    assert len(history) == 8
    assert history[-1] < 0.9 * history[0]
    assert image.shape == content.shape and float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert not torch.equal(image, content)


def test_optimisation_refuses_an_encoder_whose_weights_would_train() -> None:
    with pytest.raises(AssertionError, match="freeze"):
        optimise_image(VGGEncoder(SLIM), _smooth_image(5), _smooth_image(6), iterations=1)


def test_predict_works_inside_inference_mode_and_returns_rgb_at_the_resized_content_size(tmp_path: Path) -> None:
    make_untrained_style(tmp_path, widths=SLIM)
    predictor = NeuralStyleTransfer.from_artifact(tmp_path, load_artifact(tmp_path), torch.device("cpu")).eval()
    content, style = Image.new("RGB", (90, 50), (200, 120, 40)), Image.new("RGB", (30, 40), (20, 60, 200))
    with torch.inference_mode():  # a caller's habit for predictors must not break the optimisation
        [output] = predictor.predict([NSTRequest(content, style, iterations=2, max_side=48)])
    assert output.mode == "RGB" and output.size == (48, 24)
    assert all(p.grad is None and not p.requires_grad for p in predictor.encoder.parameters())
    predictor.warmup()
