"""Classical (Gatys) neural style transfer: its losses, its optimisation, its predictor."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from models.artifact import load_artifact
from models.style.importer import attach_nst_network
from models.style.network import VGGEncoder
from models.style.nst import (
    EncoderFeatures,
    NeuralStyleTransfer,
    coarse_to_fine,
    gram_matrix,
    nst_losses,
    paint,
    total_variation,
)
from models.style.nst_network import NST_NETWORK_FILE, NSTNetwork
from models.style.starter import make_untrained_style
from models.style.types import NSTRequest
from tests.models.conftest import fake_relu5_1

SLIM = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def encoder() -> EncoderFeatures:
    torch.manual_seed(0)
    frozen = VGGEncoder(SLIM).eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return EncoderFeatures(frozen)


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


def test_content_and_style_losses_vanish_when_the_image_is_both_targets(encoder: EncoderFeatures) -> None:
    image = _smooth_image(1)
    with torch.no_grad():
        styles, content = encoder(image)
        grams = [gram_matrix(f) for f in styles]
        same = nst_losses(encoder, image, content, grams, (1.0, 1.0, 1.0))
        other = nst_losses(encoder, _smooth_image(2), content, grams, (1.0, 1.0, 1.0))
    assert float(same.content) == 0.0 and float(same.style) < 1e-9
    assert float(other.content) > 0.0 and float(other.style) > 0.0


def _objective(network: torch.nn.Module, image: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> float:
    with torch.no_grad():
        grams = [gram_matrix(f) for f in network(style)[0]]
        return float(nst_losses(network, image, network(content)[1], grams, (1.0, 1.0, 1.0)).total)


def test_lbfgs_lowers_the_objective_within_the_step_bound(encoder: EncoderFeatures) -> None:
    content, style = _smooth_image(3), _smooth_image(4)
    image, steps = paint(encoder, content, style, iterations=12, weights=(1.0, 1.0, 1.0))
    assert 1 <= steps <= 12
    assert _objective(encoder, image, content, style) < 0.9 * _objective(encoder, content, content, style)
    assert image.shape == content.shape and float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_the_time_budget_stops_the_optimisation_early(encoder: EncoderFeatures) -> None:
    _, steps = paint(encoder, _smooth_image(3, 64), _smooth_image(4, 64), iterations=2000, max_seconds=0.0)
    assert steps <= 10  # one chunk of L-BFGS steps at most, then the clock is read


def test_a_stop_set_during_the_optimisation_ends_it_at_the_next_evaluation(encoder: EncoderFeatures) -> None:
    """The service sets ``stop`` when the client has gone; the steps must end there, not at the budget."""
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        _, steps = paint(
            encoder, _smooth_image(3, 64), _smooth_image(4, 64), iterations=2000, max_seconds=60.0, stop=stop
        )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5.0  # a 60 s budget and 2000 steps, ended by the event
    assert steps < 2000
    _, none = paint(encoder, _smooth_image(3), _smooth_image(4), iterations=50, stop=stop)  # set before: no step
    assert none == 0


def test_optimisation_refuses_a_network_whose_weights_would_train() -> None:
    with pytest.raises(AssertionError, match="freeze"):
        paint(EncoderFeatures(VGGEncoder(SLIM)), _smooth_image(5), _smooth_image(6), iterations=1)


def test_an_attached_relu5_1_network_is_what_the_predictor_optimises_over(tmp_path: Path) -> None:
    folder = tmp_path / "adain"
    make_untrained_style(folder, widths=SLIM)
    licence = tmp_path / "LICENSE"
    licence.write_text("MIT")
    manifest = attach_nst_network(folder, fake_relu5_1(tmp_path / "encoder_relu5_1.pth", SLIM), licence)
    assert {f.path for f in manifest.files} >= {NST_NETWORK_FILE, "LICENSE"}
    predictor = NeuralStyleTransfer.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    assert isinstance(predictor.network, NSTNetwork)
    styles, content = predictor.network(_smooth_image(7))
    assert [f.shape[1] for f in styles] == [32, 64, 128, 256, 256]  # the aux heads' widths, five layers
    assert content.shape[1] == SLIM[3]  # relu4_2, slim
    [result] = predictor.predict(
        [
            NSTRequest(
                Image.new("RGB", (40, 40), (200, 120, 40)),
                Image.new("RGB", (40, 40), (20, 60, 200)),
                iterations=3,
                max_side=40,
            )
        ]
    )
    assert result.image.size == (40, 40) and 1 <= result.steps <= 3


@pytest.mark.parametrize(
    "content_size, style_size, max_side, served",
    [
        ((16, 16), (16, 16), 512, (16, 16)),  # relu5_1 would be 1 px: painted at 32 px, served at 16
        ((600, 40), (64, 64), 512, (512, 34)),  # its half (20 px) is too thin for the coarse stage
        ((300, 300), (400, 24), 288, (288, 288)),  # a thin painting, likewise
    ],
)
def test_nst_paints_small_and_thin_images_that_relu5_1_cannot_read_at_their_size(
    tmp_path: Path, content_size: tuple[int, int], style_size: tuple[int, int], max_side: int, served: tuple[int, int]
) -> None:
    folder = tmp_path / "adain"
    make_untrained_style(folder, widths=SLIM)
    (tmp_path / "LICENSE").write_text("MIT")
    attach_nst_network(folder, fake_relu5_1(tmp_path / "encoder_relu5_1.pth", SLIM), tmp_path / "LICENSE")
    predictor = NeuralStyleTransfer.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    content, style = Image.new("RGB", content_size, (200, 120, 40)), Image.new("RGB", style_size, (20, 60, 200))
    [result] = predictor.predict([NSTRequest(content, style, iterations=2, max_side=max_side)])
    assert result.image.size == served and result.steps >= 1


def test_attaching_refuses_a_file_that_is_not_a_relu5_1_encoder(tmp_path: Path) -> None:
    folder = tmp_path / "adain"
    make_untrained_style(folder, widths=SLIM)
    torch.save({"conv0.weight": torch.zeros(3, 3, 1, 1)}, tmp_path / "other.pth")
    (tmp_path / "LICENSE").write_text("MIT")
    with pytest.raises(ValueError, match="relu5_1"):
        attach_nst_network(folder, tmp_path / "other.pth", tmp_path / "LICENSE")


def test_predict_works_inside_inference_mode_and_returns_rgb_in_the_photos_proportions(tmp_path: Path) -> None:
    make_untrained_style(tmp_path, widths=SLIM)
    predictor = NeuralStyleTransfer.from_artifact(tmp_path, load_artifact(tmp_path), torch.device("cpu")).eval()
    assert isinstance(predictor.network, EncoderFeatures)  # no NST network in the artifact: its AdaIN encoder
    content, style = Image.new("RGB", (90, 50), (200, 120, 40)), Image.new("RGB", (30, 40), (20, 60, 200))
    with torch.inference_mode():  # a caller's habit for predictors must not break the optimisation
        [result] = predictor.predict([NSTRequest(content, style, iterations=2, max_side=48)])
    assert result.image.mode == "RGB" and result.image.size == (48, 27) and 1 <= result.steps <= 2  # the photo's 9:5
    assert all(p.grad is None and not p.requires_grad for p in predictor.network.parameters())
    predictor.warmup()


def test_large_images_start_at_half_size_and_count_the_steps_of_both_stages(encoder: EncoderFeatures) -> None:
    content, style = _smooth_image(8, 288), _smooth_image(9, 64)
    image, steps = coarse_to_fine(encoder, content, style, 6, None, (1.0, 1.0, 1.0))
    assert image.shape == content.shape and 2 <= steps <= 6


def test_a_painting_stopped_in_its_half_size_stage_never_begins_the_full_size_one(
    encoder: EncoderFeatures, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that left during the first stage: the full-size stage still began (its style and content features,
    two passes of the VGG at full size) before its optimiser saw the stop."""
    stop = threading.Event()
    sides: list[int] = []
    real_paint = paint

    def recorded(network: Any, content: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, int]:
        sides.append(content.shape[-1])
        stop.set()  # the client leaves while this stage paints
        return real_paint(network, content, *args, **kwargs)

    monkeypatch.setattr("models.style.nst.paint", recorded)
    content, style = _smooth_image(8, 288), _smooth_image(9, 64)
    image, _ = coarse_to_fine(encoder, content, style, 6, None, (1.0, 1.0, 1.0), stop=stop)
    assert sides == [144] and image.shape == content.shape  # the half-size stage only, its result upsampled
