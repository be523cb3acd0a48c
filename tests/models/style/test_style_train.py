"""AdaIN training: deterministic batches, a loadable artifact, exact resumption, clean stops."""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from models.artifact import load_artifact
from models.style import commands
from models.style.adain import adaptive_instance_normalization
from models.style.loss_network import LossNetwork, load_loss_network
from models.style.measures import pair_losses
from models.style.network import Decoder, VGGEncoder
from models.style.predictor import StyleTransfer
from models.style.starter import he_initialised
from models.style.train import (
    StyleBatches,
    StyleTrainConfig,
    StyleTrainee,
    jittered_palette,
    train_step,
    train_style,
    training_images,
    training_losses,
)
from models.style.train_config import Objective

LOSS_WIDTHS = (4, 8, 16, 32)
CPU = torch.device("cpu")


def _write_pictures(folder: Path, count: int, size: tuple[int, int], seed: int) -> None:
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    for index in range(count):
        coarse = torch.rand(1, 3, 4, 4, generator=generator)
        smooth = torch.nn.functional.interpolate(coarse, size=(size[1], size[0]), mode="bilinear")[0]
        pixels = (smooth.permute(1, 2, 0) * 255).to(torch.uint8).numpy()  # (H, W, 3)
        Image.fromarray(pixels).save(folder / f"picture_{index}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated contents and styles, a fake ``vgg_normalised.pth`` and a matching ``decoder.pth``."""
    root = tmp_path_factory.mktemp("style-data")
    _write_pictures(root / "content", 3, (48, 40), seed=0)
    _write_pictures(root / "style", 3, (40, 56), seed=1)
    torch.manual_seed(0)
    torch.save(he_initialised(VGGEncoder(LOSS_WIDTHS)).state_dict(), root / "vgg_normalised.pth")
    torch.save(he_initialised(Decoder(LOSS_WIDTHS)).state_dict(), root / "decoder.pth")
    return root


def _config(data: Path, out_dir: Path, **changes: Any) -> StyleTrainConfig:
    cfg = StyleTrainConfig(
        content_dir=data / "content",
        style_dir=data / "style",
        loss_network=data / "vgg_normalised.pth",
        out_dir=out_dir,
        widths=(4, 8, 8, 16),
        iterations=4,
        batch_size=2,
        crop=32,
        eval_size=32,
        checkpoint_every=2,
        progress=False,
        figures=out_dir.parent / f"{out_dir.name}-figures",  # never the checkout's runs/figures
    )
    return dataclasses.replace(cfg, **changes)


def test_batches_are_a_pure_function_of_seed_and_iteration(data: Path, tmp_path: Path) -> None:
    cfg = _config(data, tmp_path / "out")
    first, again = StyleBatches(training_images(cfg), cfg), StyleBatches(training_images(cfg), cfg)
    contents, styles = first[5]
    assert contents.shape == styles.shape == (2, 3, 32, 32)
    assert float(contents.min()) >= 0.0 and float(contents.max()) <= 1.0
    assert all(torch.equal(a, b) for a, b in zip(first[5], again[5], strict=True))
    assert not torch.equal(first[6][0], contents)
    assert torch.equal(styles[-1], contents[-1])  # the self pair: its content is its style


def test_a_jittered_palette_turns_the_hue_and_keeps_the_marks() -> None:
    generator = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0.0, 1.0, 32).expand(32, 32)
    style = torch.stack([ramp, 0.5 * ramp.T, 0.2 + 0.0 * ramp])  # a reddish ramp with a green gradient across it
    assert jittered_palette(style, 0.0, generator) is style  # nothing drawn
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    assert jittered_palette(style, 1e-9, torch.Generator().manual_seed(0)) is style  # drawn, but not jittered
    turned = [jittered_palette(style, 1.0, torch.Generator().manual_seed(seed)) for seed in range(4)]
    for image in turned:
        assert image.shape == style.shape and float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert float((image - style).abs().mean()) > 0.02  # another palette
        # the marks stay: the grey levels' spatial layout still follows the original's
        grey, original = image.mean(0).flatten(), style.mean(0).flatten()
        assert float(torch.corrcoef(torch.stack([grey, original]))[0, 1]) > 0.8
    means = torch.stack([image.mean((1, 2)) for image in turned])
    assert float(means.std(0).max()) > 0.02  # the draws differ from one another


def test_a_style_jitter_changes_the_styles_alone_and_is_part_of_the_recipe(data: Path, tmp_path: Path) -> None:
    plain = _config(data, tmp_path / "out", batch_size=4)
    jittered = dataclasses.replace(plain, style_jitter=1.0)
    contents, styles = StyleBatches(training_images(plain), plain)[3]
    jittered_contents, jittered_styles = StyleBatches(training_images(jittered), jittered)[3]
    assert torch.equal(contents, jittered_contents)
    assert not torch.equal(styles[:-1], jittered_styles[:-1])
    assert torch.equal(jittered_styles[-1], jittered_contents[-1])  # the self pair is never jittered
    assert "style_jitter" not in plain.recipe() and jittered.recipe()["style_jitter"] == 1.0
    with pytest.raises(ValueError, match="style_jitter"):
        dataclasses.replace(plain, style_jitter=1.5)


def test_held_out_images_never_reach_training(data: Path, tmp_path: Path) -> None:
    images = training_images(_config(data, tmp_path / "out"))
    assert [p.name for p in images.photos] == ["picture_0.png", "picture_1.png"]  # picture_2 held out
    assert [p.name for p in images.styles] == ["picture_0.png", "picture_1.png"]


def test_training_writes_an_artifact_the_predictor_loads_with_held_out_metrics(data: Path, tmp_path: Path) -> None:
    cfg = _config(data, tmp_path / "v1", iterations=3)
    manifest = train_style(cfg)
    assert manifest.provenance.method.startswith("trained:") and manifest.version == "v1"
    assert manifest.hyperparameters["widths"] == [4, 8, 8, 16] and manifest.hyperparameters["iterations_done"] == 3
    assert manifest.hyperparameters["evaluated_on"] == ["picture_2.png", "picture_2.png"]
    assert {"mean_style_loss", "mean_content_loss", "reconstruction_mse"} <= set(manifest.metrics)
    listed = {entry.path for entry in manifest.files}  # the card travels with the weights
    assert "MODEL_CARD.md" in listed and not any(name.endswith(".jpg") for name in listed)
    # its pictures show the evaluation images (../shared's, for real): the figures folder, never the artifact
    assert cfg.figures is not None and {"style_grid.jpg", "alpha_sweep.jpg"} <= {p.name for p in cfg.figures.iterdir()}
    assert not list(cfg.out_dir.glob("*.jpg"))  # NST's picture: eval style --nst-pairs
    assert 0.0 <= manifest.metrics["own_painting_share"] <= 1.0
    transfer = StyleTransfer.from_artifact(cfg.out_dir, load_artifact(cfg.out_dir), CPU)
    assert transfer.encoder.widths == (4, 8, 8, 16)


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(data: Path, tmp_path: Path) -> None:
    train_style(_config(data, tmp_path / "whole" / "v1", iterations=4))
    train_style(_config(data, tmp_path / "parts" / "v1", iterations=3))
    train_style(_config(data, tmp_path / "parts" / "v1", iterations=4))
    whole = torch.load(tmp_path / "whole" / "v1.checkpoint.pt", map_location="cpu", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "v1.checkpoint.pt", map_location="cpu", weights_only=True)
    assert whole["iteration"] == parts["iteration"] == 4
    assert whole["history"] == parts["history"]  # the losses of iterations 3-4 match too
    for key, value in whole["model"].items():
        assert torch.equal(value, parts["model"][key]), key


def test_a_checkpoint_of_another_recipe_is_refused(data: Path, tmp_path: Path) -> None:
    train_style(_config(data, tmp_path / "v1", iterations=1))
    with pytest.raises(ValueError, match="another recipe"):
        train_style(_config(data, tmp_path / "v1", iterations=2, style_weight=5.0))


def test_a_stop_request_ends_training_after_one_step_with_a_checkpoint(data: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    cfg = _config(data, tmp_path / "v1")
    with pytest.raises(KeyboardInterrupt, match="iteration 1"):
        train_style(cfg, stop)
    assert torch.load(cfg.checkpoint_path, map_location="cpu", weights_only=True)["iteration"] == 1
    assert not cfg.out_dir.exists()  # an interrupted run writes no artifact


def test_steps_on_a_fixed_batch_lower_the_total_loss(data: Path, tmp_path: Path) -> None:
    cfg = _config(data, tmp_path / "out", lr=3e-4)
    torch.manual_seed(0)
    loss_net = load_loss_network(cfg.loss_network, CPU)
    model = StyleTrainee(cfg.widths, loss_net.feature_widths)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batch = StyleBatches(training_images(cfg), cfg)[0]
    losses = [train_step(model, loss_net, optimizer, batch, cfg)["total"] for _ in range(10)]
    assert losses[-1] < losses[0]


def test_the_train_command_trains_to_the_requested_iteration_and_prints_the_metrics(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["deepcanvas", "train", "style", "..."])  # what the manifest records
    app = typer.Typer()
    app.command()(commands.train)
    out_dir = tmp_path / "v2"
    args = [str(data / name) for name in ("content", "style", "vgg_normalised.pth")] + [str(out_dir)]
    options = "--iterations 2 --batch-size 2 --crop 32 --widths 4,8,8,16 --checkpoint-every 1 --no-progress"
    options += f" --figures {tmp_path / 'figures'}"
    result = CliRunner().invoke(app, args + options.split() + ["--hours", "1", "--bf16", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    assert '"mean_style_loss"' in result.output
    manifest = load_artifact(out_dir)
    assert manifest.hyperparameters["iterations_done"] == 2
    assert manifest.provenance.command == "deepcanvas train style ..."
    assert (tmp_path / "figures" / "style_grid.jpg").is_file() and not list(out_dir.glob("*.jpg"))


@pytest.fixture(scope="module")
def base(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base artifact as ``import-vgg`` writes one: pretrained-looking encoder and decoder, plus a LICENSE."""
    from models.style.importer import import_adain

    folder = tmp_path_factory.mktemp("base") / "vgg"
    torch.manual_seed(1)
    release = folder.parent / "release"
    release.mkdir()
    torch.save(he_initialised(VGGEncoder((4, 8, 8, 16))).state_dict(), release / "vgg.pth")
    torch.save(he_initialised(Decoder((4, 8, 8, 16))).state_dict(), release / "decoder.pth")
    import_adain(release / "vgg.pth", release / "decoder.pth", folder, version="vgg")
    (folder / "LICENSE").write_text("MIT, for the test\n")
    from models.artifact import repack_artifact

    repack_artifact(folder)  # list the LICENSE too
    return folder


def _encoder_state(folder: Path) -> dict[str, torch.Tensor]:
    return StyleTransfer.from_artifact(folder, load_artifact(folder), CPU).encoder.state_dict()


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_warm_start_trains_only_the_decoder_and_carries_the_licence(
    data: Path, tmp_path: Path, base: Path, bf16: bool
) -> None:
    cfg = _config(data, tmp_path / "v2", base=base, bf16=bf16, widths=(32, 32, 32, 32), lr=1e-3, warmup=2)
    manifest = train_style(cfg)
    assert manifest.hyperparameters["widths"] == [4, 8, 8, 16]  # the base's, whatever the config said
    assert manifest.hyperparameters["frozen_encoder"] and manifest.hyperparameters["bf16"] is bf16
    assert manifest.hyperparameters["lineage"][-1]["base"] == "adain/vgg"
    assert (cfg.out_dir / "LICENSE").read_text() == "MIT, for the test\n"
    assert "LICENSE" in {entry.path for entry in manifest.files}
    ours, theirs = _encoder_state(cfg.out_dir), _encoder_state(base)
    # the encoder is frozen: only the float16 rounding of the shipped weights may differ
    assert all(torch.allclose(ours[key], theirs[key], atol=1e-2, rtol=1e-3) for key in ours)
    decoder = StyleTransfer.from_artifact(cfg.out_dir, load_artifact(cfg.out_dir), CPU).decoder.state_dict()
    before = StyleTransfer.from_artifact(base, load_artifact(base), CPU).decoder.state_dict()
    # Adam moves each weight by about lr per step, well beyond float16 rounding (~3e-4 here)
    assert max(float((decoder[key] - before[key]).abs().max()) for key in decoder) > 2e-3


def test_a_warm_start_from_a_trained_artifact_extends_its_lineage(data: Path, tmp_path: Path, base: Path) -> None:
    first = train_style(_config(data, tmp_path / "v2", base=base, iterations=2))
    second = train_style(_config(data, tmp_path / "v3", base=tmp_path / "v2", iterations=2))
    assert len(first.hyperparameters["lineage"]) == 1
    assert [run["base"] for run in second.hyperparameters["lineage"]] == ["adain/vgg", "adain/v2"]
    assert (tmp_path / "v3" / "LICENSE").is_file()  # the licence follows every generation


def test_a_resumed_warm_started_bf16_run_ends_where_an_uninterrupted_one_does(
    data: Path, tmp_path: Path, base: Path
) -> None:
    train_style(_config(data, tmp_path / "whole" / "v2", base=base, bf16=True, iterations=4))
    train_style(_config(data, tmp_path / "parts" / "v2", base=base, bf16=True, iterations=2))
    train_style(_config(data, tmp_path / "parts" / "v2", base=base, bf16=True, iterations=4))
    whole = torch.load(tmp_path / "whole" / "v2.checkpoint.pt", map_location="cpu", weights_only=True)
    parts = torch.load(tmp_path / "parts" / "v2.checkpoint.pt", map_location="cpu", weights_only=True)
    for key, value in whole["model"].items():
        assert torch.equal(value, parts["model"][key]), key


def test_the_learning_rate_warms_up_linearly_then_decays(data: Path, tmp_path: Path) -> None:
    from models.style.train import learning_rate

    cfg = _config(data, tmp_path, lr=1e-4, lr_decay=0.0, warmup=4)
    assert [learning_rate(cfg, i) for i in range(5)] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4])
    decaying = _config(data, tmp_path, lr=1e-4, lr_decay=1.0, warmup=0)
    assert learning_rate(decaying, 1) == pytest.approx(5e-5)


def _untrained_batch(data: Path, tmp_path: Path) -> tuple[LossNetwork, StyleTrainee, torch.Tensor, torch.Tensor]:
    """A seeded untrained trainee, its loss network and one batch of 3 pairs (the last a self pair)."""
    cfg = _config(data, tmp_path / "out", batch_size=3, self_pairs=1)
    torch.manual_seed(0)
    loss_net = load_loss_network(cfg.loss_network, CPU)
    model = StyleTrainee(cfg.widths, loss_net.feature_widths)
    content, style = StyleBatches(training_images(cfg), cfg)[0]
    return loss_net, model, content, style


def _mean_log_losses(
    loss_net: LossNetwork, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor
) -> tuple[float, float]:
    """Mean log style and content loss of the first two pairs, as evaluation measures each pair."""
    measured = [pair_losses(loss_net, output[i : i + 1], content[i : i + 1], style[i : i + 1])[0] for i in range(2)]
    return sum(math.log(s) for s, _ in measured) / 2, sum(math.log(c) for _, c in measured) / 2


def test_the_measures_objective_is_the_mean_log_of_what_evaluation_measures(data: Path, tmp_path: Path) -> None:
    loss_net, model, content, style = _untrained_batch(data, tmp_path)
    with torch.no_grad():
        losses = training_losses(model, loss_net, content, style, 1, None, Objective.measures)
        paper = training_losses(model, loss_net, content, style, 1, None, Objective.paper)
        output = model.decoder(adaptive_instance_normalization(model.encoder(content), model.encoder(style)))
    # the self pair (index 2) is the pixel loss's
    expected_style, expected_content = _mean_log_losses(loss_net, output, content, style)
    assert float(losses["style"]) == pytest.approx(expected_style, rel=1e-4, abs=1e-5)
    assert float(losses["content"]) == pytest.approx(expected_content, rel=1e-4, abs=1e-5)
    assert float(paper["content"]) != pytest.approx(float(losses["content"]))  # t, not the photo, and no log


def test_training_under_matching_decodes_as_the_served_matching_decoder_does(data: Path, tmp_path: Path) -> None:
    from models.style.matching import MatchingDecoder, relu_layers

    loss_net, model, content, style = _untrained_batch(data, tmp_path)
    plain = training_losses(model, loss_net, content, style, 1, None, Objective.measures)
    matched = training_losses(model, loss_net, content, style, 1, None, Objective.measures, manner=0.5)
    assert matched["style"].item() != pytest.approx(plain["style"].item())
    matched["style"].backward()  # the gradient reaches the decoder through the matching
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())
    with torch.no_grad():  # the loss reads the output the served module gives (within its [0, 1] clamp)
        features = model.encoder(content[:2])
        target = adaptive_instance_normalization(features, model.encoder(style[:2]))
        served = MatchingDecoder(model.decoder, relu_layers(model.decoder)).eval()
        means, stds = served.statistics(model.encoder(style[:2]))
        image = served(target, means, stds, torch.full((2, 1), 0.5))[0]
    expected, _ = _mean_log_losses(loss_net, image, content, style)
    assert float(matched["style"]) == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_a_matched_run_records_its_manner(data: Path, tmp_path: Path) -> None:
    manifest = train_style(_config(data, tmp_path / "v1", iterations=1, manner=0.25, evaluate=False))
    assert manifest.hyperparameters["manner"] == 0.25
    assert manifest.hyperparameters["lineage"][-1]["manner"] == 0.25
    assert "matching at manner 0.25" in manifest.provenance.method
    with pytest.raises(ValueError, match="manner"):
        _config(data, tmp_path / "bad", manner=1.5)


def test_a_measures_run_records_its_objective_and_refuses_a_paper_checkpoint(data: Path, tmp_path: Path) -> None:
    manifest = train_style(_config(data, tmp_path / "v1", iterations=2, objective=Objective.measures, evaluate=False))
    assert manifest.hyperparameters["objective"] == "measures"
    assert manifest.hyperparameters["lineage"][-1]["objective"] == "measures"
    assert "the measures objective" in manifest.provenance.method
    assert (
        "objective"
        not in train_style(_config(data, tmp_path / "p" / "v1", iterations=1, evaluate=False)).hyperparameters
    )
    with pytest.raises(ValueError, match="another recipe"):
        train_style(_config(data, tmp_path / "p" / "v1", iterations=2, objective=Objective.measures))


def test_an_averaged_run_writes_the_moving_average_of_its_decoder_and_resumes_it_exactly(
    data: Path, tmp_path: Path, base: Path
) -> None:
    decay = 0.5
    steps: list[dict[str, torch.Tensor]] = []  # the raw decoder after each step, from resumed runs
    for done in (1, 2, 3):
        cfg = _config(data, tmp_path / "parts" / "v2", base=base, iterations=done, lr=1e-2, ema=decay)
        train_style(cfg)
        payload = torch.load(cfg.checkpoint_path, map_location="cpu", weights_only=True)
        steps.append({k[len("decoder.") :]: v for k, v in payload["model"].items() if k.startswith("decoder.")})
    expected = dict(steps[0])
    for raw in steps[1:]:
        expected = {name: decay * expected[name] + (1 - decay) * raw[name] for name in expected}
    average = payload["average"]
    assert int(average["n_averaged"]) == 3
    for name, value in expected.items():
        torch.testing.assert_close(average[f"module.{name}"], value)
    first = next(name for name in expected if name.endswith("weight"))
    assert not torch.allclose(expected[first], steps[-1][first])  # the average is not the last step

    whole = _config(data, tmp_path / "whole" / "v2", base=base, iterations=3, lr=1e-2, ema=decay)
    train_style(whole)
    uninterrupted = torch.load(whole.checkpoint_path, map_location="cpu", weights_only=True)["average"]
    assert all(torch.equal(uninterrupted[k], v) for k, v in average.items())
    written = StyleTransfer.from_artifact(whole.out_dir, load_artifact(whole.out_dir), CPU).decoder.state_dict()
    for name, value in expected.items():  # the artifact holds the average (as float16), not the last step
        torch.testing.assert_close(written[name].float(), value, atol=2e-3, rtol=2e-3)
    assert load_artifact(whole.out_dir).hyperparameters["ema"] == decay


def test_an_ema_outside_zero_to_one_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ema"):
        _config(data, tmp_path / "v1", ema=1.0)  # dataclasses.replace runs __post_init__
