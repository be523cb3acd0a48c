"""The AdaIN predictor: sizes, colour, alpha, interpolation, and loading from an artifact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from models.artifact import ArtifactError, load_artifact
from models.style.predictor import StyleTransfer, StylizeRequest
from models.style.sizing import served_size
from models.style.starter import calibrate_output, make_untrained_style

SLIM = (8, 16, 32, 64)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def style_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("adain")
    make_untrained_style(folder, widths=SLIM)
    return folder


@pytest.fixture(scope="module")
def predictor(style_folder: Path) -> StyleTransfer:
    return StyleTransfer.from_artifact(style_folder, load_artifact(style_folder), CPU).eval()


def _picture(size: tuple[int, int], seed: int) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(size[1], size[0], 3, generator=generator) * 255).to(torch.uint8)
    return Image.fromarray(pixels.numpy())


def _request(
    content: Image.Image,
    *styles: Image.Image,
    max_side: int = 64,
    weights: tuple[float, ...] | None = None,
    preserve_color: bool = False,
) -> StylizeRequest:
    weights = weights if weights is not None else (1.0,) * len(styles)
    return StylizeRequest(content, styles, weights, alpha=1.0, preserve_color=preserve_color, max_side=max_side)


@pytest.mark.parametrize(
    ("size", "max_side"), [((100, 61), 64), ((61, 100), 64), ((16, 16), 512), ((300, 17), 96), ((900, 20), 200)]
)
def test_predict_bounds_the_longer_side_keeps_aspect_and_returns_rgb(
    predictor: StyleTransfer, size: tuple[int, int], max_side: int
) -> None:
    [output] = predictor.predict([_request(_picture(size, 0), _picture((40, 30), 1), max_side=max_side)])
    assert output.mode == "RGB"
    assert output.size == served_size(*size, max_side)  # the photo's proportions, whatever the network's sides


def test_predict_never_enlarges_and_answers_each_request_in_order(predictor: StyleTransfer) -> None:
    style = _picture((200, 120), 2)
    batch = [_request(_picture((40, 24), 3), style, max_side=512), _request(_picture((24, 48), 4), style, max_side=512)]
    assert [image.size for image in predictor.predict(batch)] == [(40, 24), (24, 48)]


def test_alpha_zero_decodes_the_content_features(style_folder: Path) -> None:
    predictor = StyleTransfer.from_artifact(style_folder, load_artifact(style_folder), CPU)
    content, styles = predictor.preprocess(_request(_picture((48, 32), 5), _picture((32, 32), 6)))
    calibrate_output(predictor.encoder, predictor.decoder, probe=content)  # keep this input's output unclamped
    with torch.inference_mode():
        stylized = predictor.stylize(content, styles, [1.0], alpha=0.0)
        reconstructed = predictor.decoder(predictor.encoder(content)).clamp(0, 1)
        styled = predictor.stylize(content, styles, [1.0], alpha=1.0)
    torch.testing.assert_close(stylized, reconstructed)
    assert (styled - reconstructed).abs().max() > 0.01  # alpha matters: the equality above is not vacuous


def test_two_styles_with_weights_one_and_zero_equal_the_single_style(predictor: StyleTransfer) -> None:
    content, first, second = _picture((48, 40), 7), _picture((32, 40), 8), _picture((56, 24), 9)
    [mixed, single] = predictor.predict(
        [_request(content, first, second, weights=(1.0, 0.0)), _request(content, first)]
    )
    assert mixed.tobytes() == single.tobytes()


def test_preserve_color_gives_each_style_the_content_colours(predictor: StyleTransfer) -> None:
    content = Image.new("RGB", (32, 32), (180, 60, 40))
    content.paste((200, 90, 70), (0, 0, 16, 32))
    style = _picture((40, 40), 10).point(lambda v: 80 + v // 3)  # bluish-grey noise, far from the content
    _, [recoloured] = predictor.preprocess(_request(content, style, preserve_color=True))
    torch.testing.assert_close(
        recoloured.mean(dim=(2, 3)), torch.tensor([[190 / 255, 75 / 255, 55 / 255]]), atol=0.02, rtol=0
    )


def test_warmup_runs_one_tiny_prediction(predictor: StyleTransfer) -> None:
    predictor.warmup()


def test_from_artifact_refuses_another_architecture(style_folder: Path) -> None:
    manifest = load_artifact(style_folder).model_copy(update={"architecture": "resnet"})
    with pytest.raises(ArtifactError, match="architecture"):
        StyleTransfer.from_artifact(style_folder, manifest, CPU)


def test_from_artifact_refuses_widths_that_do_not_fit_the_weights(style_folder: Path) -> None:
    manifest = load_artifact(style_folder)
    wrong = manifest.model_copy(update={"hyperparameters": {**manifest.hyperparameters, "widths": [4, 8, 16, 32]}})
    with pytest.raises(ArtifactError, match="does not fit"):
        StyleTransfer.from_artifact(style_folder, wrong, CPU)
