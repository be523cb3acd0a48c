"""Held-out evaluation of AdaIN artifacts: hand-checkable losses, ratios, the grid and the model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from models.style import commands
from models.style.evaluate import (
    GRID_PNG,
    evaluate_style,
    pair_losses,
    split_held_out,
    style_grid,
    write_style_card,
)
from models.style.importer import import_adain
from models.style.loss_network import load_loss_network
from models.style.network import Decoder, VGGEncoder
from models.style.starter import he_initialised

SLIM = (4, 8, 16, 32)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake ``vgg_normalised.pth`` and ``decoder.pth`` side by side, plus two pictures of each kind."""
    root = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    torch.save(he_initialised(VGGEncoder(SLIM)).state_dict(), root / "vgg_normalised.pth")
    torch.save(he_initialised(Decoder(SLIM)).state_dict(), root / "decoder.pth")
    generator = torch.Generator().manual_seed(1)
    for name in ("content_a", "content_b", "style_a", "style_b"):
        pixels = (torch.rand(40, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(root / f"{name}.png")
    return root


def test_a_style_scores_zero_style_and_content_loss_against_itself(release: Path) -> None:
    loss_net = load_loss_network(release / "vgg_normalised.pth", CPU)
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        style_value, content_value = pair_losses(loss_net, style, style, style)
    # AdaIN(f(s), f(s)) is f(s) up to the eps inside the std
    assert style_value == pytest.approx(0.0, abs=1e-10) and content_value == pytest.approx(0.0, abs=1e-6)


def test_the_baseline_itself_scores_ratios_of_one(release: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "baseline"
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", artifact)  # the very same networks
    contents, styles = [release / "content_a.png", release / "content_b.png"], [release / "style_a.png"]
    metrics = evaluate_style(artifact, release / "vgg_normalised.pth", contents, styles, size=32)
    assert metrics["style_ratio"] == pytest.approx(1.0) and metrics["content_ratio"] == pytest.approx(1.0)
    assert metrics["style_loss"] > 0 and metrics["n_pairs"] == 2.0
    assert metrics["reconstruction_mse"] == pytest.approx(metrics["baseline_reconstruction_mse"])


def test_without_a_baseline_decoder_only_our_losses_are_reported(release: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "vgg_normalised.pth").write_bytes((release / "vgg_normalised.pth").read_bytes())
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", tmp_path / "artifact")
    content, style = release / "content_a.png", release / "style_a.png"
    metrics = evaluate_style(tmp_path / "artifact", alone / "vgg_normalised.pth", [content], [style], size=32)
    assert "style_loss" in metrics and "style_ratio" not in metrics


def test_the_grid_has_styles_on_the_first_row_and_contents_on_the_first_column() -> None:
    def flat(value: float, count: int) -> torch.Tensor:
        return torch.full((count, 3, 8, 8), value)

    contents, styles = flat(0.2, 2), [flat(0.6, 1), flat(1.0, 1)]
    outputs = [flat(0.4, 2), flat(0.8, 2)]
    grid = style_grid(contents, styles, outputs)

    def red(column: int, row: int) -> int:
        pixel = grid.getpixel((column * 8 + 4, row * 8 + 4))
        assert isinstance(pixel, tuple)
        return int(pixel[0])

    assert grid.size == (3 * 8, 3 * 8)
    assert red(0, 0) == 255  # the blank corner
    assert [red(1, 0), red(2, 0)] == [153, 255]  # the styles
    assert [red(0, 1), red(0, 2)] == [51, 51]  # the contents
    assert red(2, 2) == 204  # content 2 in style 2


def test_the_card_tables_every_metric_with_its_target_and_shows_the_grid(tmp_path: Path) -> None:
    metrics = {"style_loss": 1.5, "style_ratio": 0.4, "content_ratio": 1.7}
    card = write_style_card(tmp_path, metrics, Image.new("RGB", (16, 16)))
    text = card.read_text()
    assert "| style_ratio | 0.4 | <= 0.5 |" in text and "| content_ratio | 1.7 | <= 2 |" in text
    assert "| style_loss | 1.5 |" in text and f"]({GRID_PNG})" in text and (tmp_path / GRID_PNG).is_file()


def test_held_out_images_are_the_named_ones_else_the_last_quarter() -> None:
    named = [Path(f"{name}.jpg") for name in ("avril", "brad_pitt", "lenna")]
    assert split_held_out(named, ("brad_pitt",)) == ([named[0], named[2]], [named[1]])
    others = [Path(f"{index}.png") for index in range(8)]
    assert split_held_out(others, ("brad_pitt",)) == (others[:6], others[6:])
    assert split_held_out(others[:1], ("brad_pitt",)) == (others[:1], [])


@pytest.mark.shared
def test_the_shared_compressed_baseline_reconstructs_and_stylizes_a_held_out_pair(
    shared_dir: Path, tmp_path: Path
) -> None:
    from models.style.loss_network import decoder_from_state, encoder_from_state, read_state_dict
    from models.style.starter import make_untrained_style

    weights = shared_dir / "data" / "weights" / "vgg19-16x-compressed"
    artifact = tmp_path / "untrained"
    make_untrained_style(artifact, widths=(8, 16, 32, 64))  # far from any style: the ratios must say so
    content = shared_dir / "data" / "style-transfer" / "content" / "brad_pitt.jpg"
    style = shared_dir / "data" / "style-transfer" / "style" / "la_muse.jpg"
    metrics = evaluate_style(artifact, weights / "encoder_relu4_1.pth", [content], [style], size=128)
    assert metrics["baseline_reconstruction_mse"] < 0.01  # the compressed decoder maps onto our layout
    assert metrics["baseline_style_loss"] < metrics["style_loss"]
    assert encoder_from_state(read_state_dict(weights / "encoder_relu4_1.pth")).widths == (16, 32, 64, 128)
    assert decoder_from_state(read_state_dict(weights / "decoder_relu4_1.pth")).widths == (16, 32, 64, 128)


def test_the_eval_command_prints_the_metrics_and_writes_the_card(release: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.evaluate)
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", tmp_path / "artifact")
    for kind in ("content", "style"):
        (tmp_path / kind).mkdir()
        for name in ("a", "b"):
            (tmp_path / kind / f"{name}.png").write_bytes((release / f"{kind}_{name}.png").read_bytes())
    args = [str(tmp_path / "artifact"), str(release / "vgg_normalised.pth"), str(tmp_path / "content")]
    args += [str(tmp_path / "style"), "--size", "32", "--card-dir", str(tmp_path / "card")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"style_ratio": 1.0' in result.output and '"b.png"' in result.output  # b is the held-out quarter
    assert (tmp_path / "card" / "MODEL_CARD.md").is_file()
