"""Held-out evaluation of AdaIN artifacts: hand-checkable losses, ratios, the grid and the model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from models.artifact import load_artifact
from models.style import commands
from models.style.card import ALPHA_IMAGE, CARD_NAME, GRID_IMAGE, NST_IMAGE, NST_PLOT, style_grid
from models.style.evaluate import evaluate_style, evaluation_images, spread, unseen_images, validation_images
from models.style.importer import import_adain
from models.style.loss_network import load_loss_network
from models.style.measures import pair_losses
from models.style.network import Decoder, VGGEncoder
from models.style.split import held_out_contents, held_out_styles, split_held_out
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
        [(style_value, content_value)] = pair_losses(loss_net, style, style, style)
    # AdaIN(f(s), f(s)) is f(s) up to the eps inside the std
    assert style_value == pytest.approx(0.0, abs=1e-10) and content_value == pytest.approx(0.0, abs=1e-6)


def test_the_baseline_itself_scores_ratios_of_one(release: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "baseline"
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", artifact)  # the very same networks
    contents, styles = [release / "content_a.png", release / "content_b.png"], [release / "style_a.png"]
    metrics = evaluate_style(artifact, release / "vgg_normalised.pth", contents, styles, size=32, baseline=artifact)
    assert metrics["style_ratio"] == pytest.approx(1.0) and metrics["content_ratio"] == pytest.approx(1.0)
    assert metrics["mean_style_loss"] > 0 and metrics["n_pairs"] == 2.0


def test_without_a_baseline_only_our_losses_are_reported(release: Path, tmp_path: Path) -> None:
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", tmp_path / "artifact")
    content, style = release / "content_a.png", release / "style_a.png"
    metrics = evaluate_style(tmp_path / "artifact", release / "vgg_normalised.pth", [content], [style], size=32)
    assert "mean_style_loss" in metrics and "style_ratio" not in metrics


def test_a_stronger_stylizer_has_a_lower_style_ratio_than_the_baseline(release: Path, tmp_path: Path) -> None:
    # the style image itself as the output has zero style loss: a perfect painter's ratio is 0
    loss_net = load_loss_network(release / "vgg_normalised.pth", CPU)
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        [(as_style, _)] = pair_losses(loss_net, style, content, style)
        [(as_content, content_value)] = pair_losses(loss_net, content, content, style)
    assert as_style == pytest.approx(0.0, abs=1e-8) and as_content > 0.0 and content_value == pytest.approx(0.0)


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


def test_held_out_images_are_the_named_ones_else_the_last_quarter() -> None:
    named = [Path(f"{name}.jpg") for name in ("avril", "brad_pitt", "lenna")]
    assert split_held_out(named, ("brad_pitt",), share=0) == ([named[0], named[2]], [named[1]])
    others = [Path(f"{index}.png") for index in range(8)]
    assert split_held_out(others, ("brad_pitt",), share=0) == (others[:6], others[6:])
    assert split_held_out(others[:1], ("brad_pitt",), share=0) == (others[:1], [])


def test_a_corpus_prefix_does_not_hide_a_named_picture_and_the_hash_share_is_stable() -> None:
    paths = [Path("corpus/GlebSBrykin_la_muse.jpg"), *(Path(f"corpus/photo_{i}.jpg") for i in range(400))]
    training, held = split_held_out(paths, ("la_muse",))
    assert paths[0] in held and not set(training) & set(held) and len(training) + len(held) == len(paths)
    assert 25 <= len(held) <= 80  # about one in eight, by hash of the stem
    shuffled_held = split_held_out(list(reversed(paths)), ("la_muse",))[1]
    assert set(shuffled_held) == set(held)  # the folder's order does not matter, only the names


def test_spread_picks_evenly_and_keeps_short_lists() -> None:
    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8] and spread([1, 2], 5) == [1, 2]


@pytest.mark.shared
def test_the_shared_compressed_baseline_reconstructs_and_stylizes_a_held_out_pair(
    shared_dir: Path, tmp_path: Path
) -> None:
    from models.style.importer import import_compressed_vgg
    from models.style.loss_network import decoder_from_state, encoder_from_state, read_state_dict
    from models.style.starter import make_untrained_style

    weights = shared_dir / "data" / "weights" / "vgg19-16x-compressed"
    baseline = tmp_path / "vgg16x"
    import_compressed_vgg(
        weights / "encoder_relu4_1.pth", weights / "decoder_relu4_1.pth", weights / "LICENSE", baseline
    )
    artifact = tmp_path / "untrained"
    make_untrained_style(artifact, widths=(8, 16, 32, 64))  # far from any style: the ratios must say so
    content = shared_dir / "data" / "style-transfer" / "content" / "brad_pitt.jpg"
    style = shared_dir / "data" / "style-transfer" / "style" / "la_muse.jpg"
    loss_network = weights / "encoder_relu5_1.pth"
    reference = evaluate_style(baseline, loss_network, [content], [style], size=128)
    assert reference["reconstruction_mse"] < 0.01  # the compressed decoder maps onto our layout
    metrics = evaluate_style(artifact, loss_network, [content], [style], size=128, baseline=baseline)
    assert metrics["style_ratio"] > 1.0 and metrics["baseline_mean_style_loss"] < metrics["mean_style_loss"]
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
    args += [str(tmp_path / "style"), "--size", "32", "--baseline", str(tmp_path / "artifact"), "--card"]
    args += ["--nst-pairs", "1", "--figures", str(tmp_path / "figures")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"style_ratio": 1.0' in result.output and '"b.png"' in result.output  # b is the held-out quarter
    manifest = load_artifact(tmp_path / "artifact")  # re-packed: the card and its chart are listed and hashed
    listed = {entry.path for entry in manifest.files}
    assert {CARD_NAME, NST_PLOT} <= listed and manifest.metrics["style_ratio"] == 1.0
    assert manifest.metrics["nst_pairs"] == 1 and manifest.metrics["nst_median_steps"] >= 1
    assert "own_painting_share" in manifest.metrics
    # the pictures show the evaluated photos and paintings (../shared's, for real): drawn, but never in the artifact
    pictures = {GRID_IMAGE, ALPHA_IMAGE, NST_IMAGE}
    assert pictures <= {p.name for p in (tmp_path / "figures").iterdir()}
    assert not pictures & ({p.name for p in (tmp_path / "artifact").iterdir()} | listed)
    assert not any(name.endswith(".jpg") for name in listed)
    card = (tmp_path / "artifact" / CARD_NAME).read_text()
    assert "| style_ratio | 1 | <= 0.40 |" in card and f"]({NST_PLOT})" in card
    assert f"]({GRID_IMAGE})" not in card and f"Not shipped: `{GRID_IMAGE}` is drawn by" in card


def test_validation_images_are_held_out_and_never_the_reported_ones(tmp_path: Path) -> None:
    for kind in ("content", "style"):
        (tmp_path / kind).mkdir()
        for index in range(200):  # about 25 held out by hash: 8 reported, the rest for validation
            (tmp_path / kind / f"image_{index:03d}.jpg").write_bytes(b"")
    reported = evaluation_images(tmp_path / "content", tmp_path / "style")
    chosen_on = validation_images(tmp_path / "content", tmp_path / "style", count=3)
    for test, validation, held in zip(
        reported, chosen_on, (held_out_contents(tmp_path / "content"), held_out_styles(tmp_path / "style")), strict=True
    ):
        assert validation and set(validation) <= set(held) and not set(validation) & set(test)


def test_unseen_images_are_held_out_beyond_the_test_grid_and_every_validation_split(tmp_path: Path) -> None:
    """A second test for settings chosen on validation: no validation count, nor the test grid, reaches it."""
    from models.style.split import VALIDATION_MAX

    for kind in ("content", "style"):
        (tmp_path / kind).mkdir()
        for index in range(400):  # about 50 held out by hash: 8 reported, 16 for validation, the rest unseen
            (tmp_path / kind / f"image_{index:03d}.jpg").write_bytes(b"")
    dirs = (tmp_path / "content", tmp_path / "style")
    reported, unseen = evaluation_images(*dirs), unseen_images(*dirs)
    widest = validation_images(*dirs, count=VALIDATION_MAX)
    held = (held_out_contents(dirs[0]), held_out_styles(dirs[1]))
    for kind in range(2):
        assert unseen[kind] and set(unseen[kind]) <= set(held[kind])
        assert not set(unseen[kind]) & set(reported[kind])
        assert set(held[kind]) == set(reported[kind]) | set(widest[kind]) | set(unseen[kind])
        for count in range(2, VALIDATION_MAX + 1):  # a smaller validation split is a subset of the widest
            assert set(validation_images(*dirs, count=count)[kind]) <= set(widest[kind])
    with pytest.raises(AssertionError):
        validation_images(*dirs, count=VALIDATION_MAX + 1)


def test_count_sizes_the_validation_split_only(release: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.evaluate)
    for kind in ("content", "style"):
        (tmp_path / kind).mkdir()
        for index in range(200):  # about 25 held out by hash: 8 reported, the rest for validation
            Image.new("RGB", (40, 40), (index, 100, 50)).save(tmp_path / kind / f"image_{index:03d}.png")
    import_adain(release / "vgg_normalised.pth", release / "decoder.pth", tmp_path / "artifact")
    args = [str(tmp_path / "artifact"), str(release / "vgg_normalised.pth"), str(tmp_path / "content")]
    args += [str(tmp_path / "style"), "--size", "32", "--count", "3"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "test split" in refused.output
    done = CliRunner().invoke(app, [*args, "--split", "validation"])
    assert done.exit_code == 0, done.output
    assert '"n_pairs": 9.0' in done.output  # 3 photos × 3 paintings
    too_wide = CliRunner().invoke(app, [*args[:-1], "17", "--split", "validation"])  # would reach the unseen images
    assert too_wide.exit_code == 2, too_wide.output
