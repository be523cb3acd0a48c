"""AdaIN training: deterministic batches, a loadable artifact, exact resumption, clean stops."""

from __future__ import annotations

import dataclasses
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
from models.style.loss_network import load_loss_network
from models.style.network import Decoder, VGGEncoder
from models.style.predictor import StyleTransfer
from models.style.starter import he_initialised
from models.style.train import (
    StyleBatches,
    StyleTrainConfig,
    StyleTrainee,
    train_step,
    train_style,
    training_images,
)

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


def test_held_out_images_never_reach_training(data: Path, tmp_path: Path) -> None:
    images = training_images(_config(data, tmp_path / "out"))
    assert [p.name for p in images.photos] == ["picture_0.png", "picture_1.png"]  # picture_2 held out
    assert [p.name for p in images.styles] == ["picture_0.png", "picture_1.png"]


def test_training_writes_an_artifact_the_predictor_loads_with_held_out_metrics(data: Path, tmp_path: Path) -> None:
    cfg = _config(data, tmp_path / "v1", iterations=3)
    manifest = train_style(cfg)
    assert manifest.provenance.method.startswith("trained:") and manifest.version == "v1"
    assert manifest.hyperparameters["widths"] == [4, 8, 8, 16] and manifest.hyperparameters["iterations_done"] == 3
    assert manifest.hyperparameters["held_out"] == ["picture_2.png", "picture_2.png"]
    assert {"style_loss", "content_loss", "style_ratio", "content_ratio"} <= set(manifest.metrics)
    assert (cfg.out_dir / "MODEL_CARD.md").is_file() and (cfg.out_dir / "style_grid.png").is_file()
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
    result = CliRunner().invoke(app, args + options.split())
    assert result.exit_code == 0, result.output
    assert '"style_ratio"' in result.output
    manifest = load_artifact(out_dir)
    assert manifest.hyperparameters["iterations_done"] == 2
    assert manifest.provenance.command == "deepcanvas train style ..."
