"""Held-out rule v2 (models/style/split.py): v1's held-out images and more, copies of one painting together, test
and validation grids of one image per work; the trainer and the eval command follow the artifact's rule."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from models.artifact import load_artifact, repack_artifact
from models.style import commands
from models.style.evaluate import (
    adain_stylizer,
    evaluation_images,
    load_transfer,
    unseen_images,
    validation_images,
    write_pair_table,
)
from models.style.importer import import_adain
from models.style.network import Decoder, VGGEncoder
from models.style.split import WORKS, training_and_held_out, v2_grid, work_of
from models.style.starter import he_initialised
from models.style.train import training_images
from models.style.train_config import StyleTrainConfig

SLIM = (4, 8, 16, 32)


def corpus(root: Path, kind: str, count: int, extra: tuple[str, ...] = ()) -> Path:
    folder = root / kind
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(count)
    for stem in (*(f"image_{index:03d}" for index in range(count)), *extra):
        pixels = (torch.rand(40, 40, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{stem}.png")
    return folder


COPIES = tuple(WORKS)  # every painting the corpus holds several copies of


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return corpus(tmp_path, "content", 300, ("brad_pitt",)), corpus(tmp_path, "style", 200, COPIES)


def test_v2_holds_out_what_v1_does_and_about_a_third_of_the_photos_and_a_quarter_of_the_paintings(
    folders: tuple[Path, Path],
) -> None:
    for folder, kind, share in ((folders[0], "content", 3), (folders[1], "style", 4)):
        v1_training, v1_held = training_and_held_out(folder, kind, "v1")
        training, held = training_and_held_out(folder, kind, "v2")
        assert set(v1_held) <= set(held) and not set(training) & set(held)
        assert sorted(training + held) == sorted(v1_training + v1_held)
        total = len(training) + len(held)
        assert total / share * 0.7 < len(held) - len(v1_held) + len(v1_held) / share < total / share * 1.4
    assert folders[0] / "brad_pitt.png" in training_and_held_out(folders[0], "content", "v2")[1]  # a named picture


def test_every_copy_of_a_painting_is_on_the_same_side(folders: tuple[Path, Path]) -> None:
    training, held = training_and_held_out(folders[1], "style", "v2")
    sides = {work_of(p): p in held for p in held + training}
    for stem, work in WORKS.items():
        assert (folders[1] / f"{stem}.png" in held) == sides[work], stem
    # v1 holds out two of the three La Muse copies by name and trains on none; v2 keeps the rest with them
    assert {p.stem for p in held} >= {"GlebSBrykin_la_muse", "lengstrom_la_muse", "xunhuang1995_la_muse"}


def test_the_v2_grids_divide_the_held_out_works_one_image_each(folders: tuple[Path, Path]) -> None:
    for folder, kind in ((folders[0], "content"), (folders[1], "style")):
        held = training_and_held_out(folder, kind, "v2")[1]
        test, validation = v2_grid(folder, kind, "test"), v2_grid(folder, kind, "validation")
        assert test and validation and not set(test) & set(validation)
        assert set(test) | set(validation) <= set(held)
        works = [work_of(p) for p in test + validation]
        assert len(works) == len(set(works)) == len({work_of(p) for p in held})  # each work once, every work
    assert evaluation_images(*folders, rule="v2") == (
        v2_grid(folders[0], "content", "test"),
        v2_grid(folders[1], "style", "test"),
    )
    every = validation_images(*folders, count=None, rule="v2")
    assert every == (v2_grid(folders[0], "content", "validation"), v2_grid(folders[1], "style", "validation"))
    assert all(
        len(part) == 3 and set(part) <= set(whole)
        for part, whole in zip(validation_images(*folders, count=3, rule="v2"), every, strict=True)
    )
    with pytest.raises(ValueError, match="no unseen split"):
        unseen_images(*folders, rule="v2")


def test_the_v2_split_depends_on_the_names_alone(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    grown = corpus(tmp_path / "more", "style", 260, COPIES)  # the same names, and 60 more
    before = {p.stem for p in training_and_held_out(folders[1], "style", "v2")[1]}
    after = {p.stem for p in training_and_held_out(grown, "style", "v2")[1]}
    assert before and after - before and {s for s in after if not s.startswith("image_") or int(s[6:]) < 200} == before


def test_the_trainer_keeps_the_v2_held_out_images_out_and_records_the_rule(folders: tuple[Path, Path]) -> None:
    def config(rule: str) -> StyleTrainConfig:
        return StyleTrainConfig(folders[0], folders[1], Path("loss.pth"), Path("out"), held_out=rule)

    images = training_images(config("v2"))
    for folder, kind, trained in ((folders[0], "content", images.photos), (folders[1], "style", images.styles)):
        assert set(trained) == set(training_and_held_out(folder, kind, "v2")[0])
    assert len(images.photos) < len(training_images(config("v1")).photos)
    assert config("v2").recipe()["held_out"] == "v2" and "held_out" not in config("v1").recipe()
    with pytest.raises(ValueError, match="held_out"):
        config("v3")


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    torch.save(he_initialised(VGGEncoder(SLIM)).state_dict(), tmp_path / "vgg.pth")
    torch.save(he_initialised(Decoder(SLIM)).state_dict(), tmp_path / "decoder.pth")
    import_adain(tmp_path / "vgg.pth", tmp_path / "decoder.pth", tmp_path / "artifact")
    return tmp_path / "artifact", tmp_path / "vgg.pth"


def test_the_eval_command_takes_the_artifacts_rule_and_refuses_what_v2_has_not(
    artifact: tuple[Path, Path], tmp_path: Path
) -> None:
    app = typer.Typer()
    app.command()(commands.evaluate)
    content, style = corpus(tmp_path, "c", 40), corpus(tmp_path, "s", 24, ("GlebSBrykin_la_muse",))
    args = [str(artifact[0]), str(artifact[1]), str(content), str(style), "--size", "32"]
    v1 = CliRunner().invoke(app, args)
    assert v1.exit_code == 0, v1.output
    hyperparameters = load_artifact(artifact[0]).hyperparameters
    repack_artifact(artifact[0], hyperparameters=hyperparameters | {"held_out": "v2"})
    v2 = CliRunner().invoke(app, args)
    assert v2.exit_code == 0, v2.output
    pairs = len(v2_grid(content, "content", "test")) * len(v2_grid(style, "style", "test"))
    assert f'"n_pairs": {float(pairs)}' in v2.output and pairs != 64
    assert CliRunner().invoke(app, [*args, "--split", "unseen"]).exit_code == 2
    assert "no unseen split" in CliRunner().invoke(app, [*args, "--split", "unseen"]).output
    assert CliRunner().invoke(app, [*args, "--held-out", "v9"]).exit_code == 2
    overridden = CliRunner().invoke(app, [*args, "--held-out", "v1"])
    v1_pairs = [len(images) for images in evaluation_images(content, style)]
    assert overridden.exit_code == 0 and f'"n_pairs": {float(v1_pairs[0] * v1_pairs[1])}' in overridden.output
    assert "trained under" in CliRunner().invoke(app, [*args, "--held-out", "v1", "--card"]).output


def test_the_evaluation_stylizer_caches_each_paintings_statistics_under_its_own_pixels(
    artifact: tuple[Path, Path],
) -> None:
    transfer = load_transfer(artifact[0], torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    content, first, second = (torch.rand(1, 3, 32, 32, generator=generator) for _ in range(3))
    stylize = adain_stylizer(transfer)
    with torch.inference_mode():
        expected = [transfer.stylize(content, [s], [1.0], 1.0, None) for s in (first, second)]
        got = [stylize(content, s) for s in (first, second, first)]
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1]) and torch.equal(got[2], expected[0])
    assert not torch.equal(expected[0], expected[1]) and len(transfer.statistics) == 2


def test_a_sweep_measures_more_manners_on_the_same_pairs_and_baseline(
    artifact: tuple[Path, Path], tmp_path: Path
) -> None:
    app = typer.Typer()
    app.command()(commands.evaluate)
    content, style = corpus(tmp_path, "c", 40), corpus(tmp_path, "s", 24)
    args = [
        str(artifact[0]),
        str(artifact[1]),
        str(content),
        str(style),
        "--size",
        "32",
        "--baseline",
        str(artifact[0]),
    ]
    table = tmp_path / "pairs" / "v.csv"
    swept = CliRunner().invoke(app, [*args, "--sweep", "0", "--pairs", str(table)])
    assert swept.exit_code == 0, swept.output
    metrics = json.loads(swept.output[swept.output.rindex("\n{") :])
    assert metrics["manner_0_style_ratio"] == metrics["style_ratio"] == pytest.approx(1.0)  # the baseline itself
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    n_pairs = int(metrics["n_pairs"])
    assert [row["run"] for row in rows] == ["default"] * n_pairs + ["baseline"] * n_pairs + ["manner_0"] * n_pairs
    default = rows[:n_pairs]
    assert statistics.median(float(row["content_ratio"]) for row in default) == pytest.approx(
        metrics["content_ratio"], rel=1e-5
    )
    assert statistics.fmean(float(row["style_loss"]) for row in default) == pytest.approx(
        metrics["mean_style_loss"], rel=1e-5
    )
    assert len({(row["photo"], row["painting"]) for row in default}) == n_pairs  # every pair once per run
    with_card = CliRunner().invoke(app, [*args, "--pairs", str(table), "--card"])
    assert with_card.exit_code == 2 and "per-pair table" in with_card.output
    at_manner = CliRunner().invoke(app, [*args, "--manner", "0", "--pairs", str(table)])
    assert at_manner.exit_code == 0, at_manner.output
    with table.open() as handle:  # the run at an asked manner is named by it, not "default"
        assert {row["run"] for row in csv.DictReader(handle)} == {"manner_0", "baseline"}
    assert "manner_0_own_painting_share" in metrics
    unmatched = CliRunner().invoke(app, [*args, "--sweep", "0,0.5"])  # this decoder has no matching to sweep
    assert unmatched.exit_code == 2 and "match-decoder" in unmatched.output
    assert CliRunner().invoke(app, [*args, "--sweep", "0,2"]).exit_code == 2


def test_a_grid_measured_in_chunks_measures_what_it_does_in_one_batch(
    artifact: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.style import evaluate

    contents, styles = sorted(corpus(tmp_path, "c", 10).iterdir()), sorted(corpus(tmp_path, "s", 3).iterdir())
    measure = [artifact[0], artifact[1], contents, styles, 32, artifact[0]]
    whole = evaluate.evaluate_style(*measure)  # type: ignore[arg-type]
    monkeypatch.setattr(evaluate, "CHUNK", 3)  # 10 contents: chunks of 3, 3, 3 and 1
    chunked = evaluate.evaluate_style(*measure)  # type: ignore[arg-type]
    assert chunked.keys() == whole.keys() and whole["n_pairs"] == 30
    assert all(chunked[key] == pytest.approx(value, rel=1e-5) for key, value in whole.items()), (whole, chunked)


def test_a_run_trains_under_its_bases_rule_and_no_other(artifact: tuple[Path, Path]) -> None:
    """A base trained on the corpus under v2 went on under v1 by default (--held-out defaulted to v1): the run trained
    on v2's held-out photos, and its artifact, labelled v1, was evaluated on v1's grid, so the leak never showed."""
    from models.style.train_config import held_out_rule

    imported = artifact[0]  # no lineage: it saw none of the corpus
    assert held_out_rule(imported, None) == "v1" and held_out_rule(imported, "v2") == "v2"
    assert held_out_rule(None, None) == "v1"
    hyperparameters = load_artifact(imported).hyperparameters
    lineage = [{"base": "adain/vgg16x", "iterations": 10}]
    repack_artifact(imported, hyperparameters=hyperparameters | {"held_out": "v2", "lineage": lineage})
    assert held_out_rule(imported, None) == "v2" and held_out_rule(imported, "v2") == "v2"
    with pytest.raises(ValueError, match="trained under held-out rule v2"):
        held_out_rule(imported, "v1")
    repack_artifact(imported, hyperparameters=hyperparameters | {"lineage": lineage})  # trained under v1
    with pytest.raises(ValueError, match="trained under held-out rule v1"):
        held_out_rule(imported, "v2")
    with pytest.raises(ValueError, match="one of v1, v2"):
        held_out_rule(None, "v7")


def test_the_lineage_records_a_runs_rule(folders: tuple[Path, Path]) -> None:
    from models.style.packing import lineage

    def config(rule: str) -> StyleTrainConfig:
        return StyleTrainConfig(folders[0], folders[1], Path("loss.pth"), Path("out"), held_out=rule)

    assert lineage(config("v2"), 5)[-1]["held_out"] == "v2" and "held_out" not in lineage(config("v1"), 5)[-1]


def test_an_empty_split_says_which_rule_and_folder_and_a_stricter_rule_says_what_it_measures(
    artifact: tuple[Path, Path], tmp_path: Path
) -> None:
    app = typer.Typer()
    app.command()(commands.evaluate)
    content, style = corpus(tmp_path, "c", 40), corpus(tmp_path, "s", 1)  # one painting: never in both grids
    args = [str(artifact[0]), str(artifact[1]), str(content), str(style), "--size", "32", "--held-out", "v2"]
    refused = [CliRunner().invoke(app, [*args, "--split", split]) for split in ("test", "validation")]
    assert [answer.exit_code for answer in refused] == [2, 2]
    assert any("rule v2's" in answer.output and "STYLE_DIR" in answer.output for answer in refused)
    more = corpus(tmp_path, "s2", 24)
    stricter = CliRunner().invoke(app, [*args[:3], str(more), *args[4:]])
    assert stricter.exit_code == 0, stricter.output
    assert "trained under held-out rule v1" in stricter.output


def test_the_pair_table_names_each_row_by_its_pair_style_major_with_its_ratios(tmp_path: Path) -> None:
    contents = [Path("BSD100/1.jpg"), Path("Set5/1.jpg")]  # a stem that repeats across sets
    styles = [Path("paintings/x.jpg"), Path("paintings/y.jpg"), Path("paintings/z.jpg")]
    ours = [(float(i + 1), 10.0 * (i + 1)) for i in range(6)]
    table = tmp_path / "t.csv"
    assert write_pair_table(table, contents, styles, {"default": ours, "baseline": [(2.0, 5.0)] * 6}) == 12
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    for index, row in enumerate(rows[:6]):  # style-major: every photo in the first painting, then the next
        assert (row["photo"], row["painting"]) == (
            f"{contents[index % 2].parent.name}/{contents[index % 2].name}",
            f"paintings/{styles[index // 2].name}",
        )
        assert float(row["style_ratio"]) == pytest.approx((index + 1) / 2.0)
        assert float(row["content_ratio"]) == pytest.approx(10.0 * (index + 1) / 5.0)
    assert rows[1]["photo"] == "Set5/1.jpg" and rows[6]["run"] == "baseline"
