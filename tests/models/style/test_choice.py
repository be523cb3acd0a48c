"""Choosing a style setting on a validation table with a margin for the painting draw (models/style/choice.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from models.style import commands
from models.style.choice import CONTENT_BOUND, OWN_BOUND, STYLE_BOUND, RunSummary, choose, describe, read_pairs

PHOTOS = [f"photos/p{index}.jpg" for index in range(4)]
PAINTINGS = [f"paintings/w{index}.jpg" for index in range(6)]
HEADER = ["run", "photo", "painting", "style_loss", "content_loss", "style_ratio", "content_ratio", "own_painting"]
Measures = tuple[float, float, int]  # style ratio, content ratio, own-painting flag


def constant(style: float, content: float, own: int = 1) -> dict[str, Measures]:
    return {painting: (style, content, own) for painting in PAINTINGS}


# steady: every pair alike, well within the targets: the margin is the content's, (1.5 - 1.4) / 1.5
STEADY = constant(0.30, 1.40)
# sturdy: also qualifies, with a larger margin: (1.0 - 0.9) / 0.9 (the own-painting share's)
STURDY = constant(0.30, 1.20)
# fragile: the full grid's median content ratio is 1.3 (16 of its 24 pairs) and its margin the largest, but two
# of six paintings melt the photo (2.5): a draw of six paintings holds three or more of them a third of the time
FRAGILE = {painting: (0.10, 1.30 if index < 4 else 2.50, 1) for index, painting in enumerate(PAINTINGS)}
# melting: every painting over the content target
MELTING = constant(0.20, 1.90)


def write_table(path: Path, runs: dict[str, dict[str, Measures]], baseline: bool = True, skip: int = 0) -> Path:
    """A per-pair table as ``eval style --pairs`` writes it (style-major), less its first ``skip`` rows of runs."""
    rows: list[list[str]] = []
    for run, measures in runs.items():
        for painting in PAINTINGS:
            style, content, own = measures[painting]
            for photo in PHOTOS:
                rows.append([run, photo, painting, f"{style / 10:g}", f"{content:g}", f"{style:g}", f"{content:g}"])
                rows[-1].append(str(own))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        if baseline:  # no ratios to itself here, and never an own-painting flag
            writer.writerows(
                ["baseline", photo, painting, "0.1", "1", "", "", ""] for painting in PAINTINGS for photo in PHOTOS
            )
        writer.writerows(rows[skip:])
    return path


def summaries_by_run(summaries: list[RunSummary]) -> dict[str, RunSummary]:
    return {summary.run: summary for summary in summaries}


def test_read_pairs_skips_the_baseline_and_reads_each_pairs_measures(tmp_path: Path) -> None:
    table = read_pairs(write_table(tmp_path / "pairs.csv", {"fragile": FRAGILE, "steady": STEADY}))
    assert set(table) == {"fragile", "steady"}
    assert len(table["fragile"]) == len(PHOTOS) * len(PAINTINGS)
    assert table["fragile"][(PHOTOS[1], PAINTINGS[5])] == (0.1, 2.5, 1.0)
    assert table["steady"][(PHOTOS[0], PAINTINGS[0])] == (0.3, 1.4, 1.0)


def test_rows_without_own_painting_flags_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "old.csv"  # a table written before own-painting flags: ratios, but an empty last column
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerow(["manner_0.4", PHOTOS[0], PAINTINGS[0], "0.1", "1", "0.3", "1.2", ""])
    assert read_pairs(path) == {}


def test_the_qualifying_run_is_chosen_over_one_whose_medians_look_better(tmp_path: Path) -> None:
    runs = {"fragile": FRAGILE, "melting": MELTING, "steady": STEADY}
    summaries, chosen = choose(read_pairs(write_table(tmp_path / "pairs.csv", runs)), paintings=6, draws=300)
    by_run = summaries_by_run(summaries)
    assert [summary.run for summary in summaries] == ["fragile", "melting", "steady"]
    assert chosen is not None and chosen.run == "steady"
    steady, fragile, melting = by_run["steady"], by_run["fragile"], by_run["melting"]
    # every pair alike: each draw's medians are the grid's
    assert (steady.style_ratio, steady.content_ratio, steady.own_share) == pytest.approx((0.30, 1.40, 1.0))
    assert (steady.style_p90, steady.content_p90, steady.own_p10) == pytest.approx((0.30, 1.40, 1.0))
    assert steady.qualifies and steady.margin == pytest.approx((CONTENT_BOUND - 1.40) / CONTENT_BOUND)
    # fragile's full-grid medians are well within the targets, with the larger margin, but its draws are not
    assert fragile.content_ratio == pytest.approx(1.30) and fragile.margin > steady.margin
    assert fragile.content_p90 > CONTENT_BOUND and not fragile.qualifies
    assert melting.content_p90 == pytest.approx(1.90) and not melting.qualifies and melting.margin < 0


def test_of_two_qualifying_runs_the_larger_margin_wins_whatever_their_order(tmp_path: Path) -> None:
    for order in (("steady", "sturdy"), ("sturdy", "steady")):
        runs = {name: {"steady": STEADY, "sturdy": STURDY}[name] for name in order}
        summaries, chosen = choose(read_pairs(write_table(tmp_path / "pairs.csv", runs)), paintings=6, draws=100)
        assert all(summary.qualifies for summary in summaries)
        assert chosen is not None and chosen.run == "sturdy"
        assert chosen.margin == pytest.approx((1.0 - OWN_BOUND) / OWN_BOUND)


@pytest.mark.parametrize(
    ("measures", "failing"),
    [
        ((STYLE_BOUND + 0.01, 1.0, 1), "style"),
        ((0.2, CONTENT_BOUND + 0.01, 1), "content"),
        ((0.2, 1.0, 0), "own"),
    ],
)
def test_each_target_alone_can_disqualify(tmp_path: Path, measures: Measures, failing: str) -> None:
    runs = {"run": {painting: measures for painting in PAINTINGS}}
    summaries, chosen = choose(read_pairs(write_table(tmp_path / "pairs.csv", runs)), paintings=6, draws=50)
    assert chosen is None and not summaries[0].qualifies and summaries[0].margin < 0


def test_the_resampling_is_seeded(tmp_path: Path) -> None:
    table = read_pairs(write_table(tmp_path / "pairs.csv", {"fragile": FRAGILE}))
    first, second = choose(table, 6, 200, seed=3)[0], choose(table, 6, 200, seed=3)[0]
    assert first == second


def test_the_painting_count_sizes_the_margin(tmp_path: Path) -> None:
    """A larger test grid draws nearer the validation grid's share of melting paintings: fragile passes there."""
    table = read_pairs(write_table(tmp_path / "pairs.csv", {"fragile": FRAGILE}))
    assert choose(table, 6, 300)[1] is None
    [large], chosen = choose(table, 60, 300)
    assert chosen == large and large.content_p90 == pytest.approx(1.30)


def test_a_table_that_is_not_a_full_grid_is_refused(tmp_path: Path) -> None:
    table = read_pairs(write_table(tmp_path / "pairs.csv", {"steady": STEADY}, skip=1))
    assert len(table["steady"]) == len(PHOTOS) * len(PAINTINGS) - 1
    with pytest.raises(ValueError, match="not a full photo × painting grid"):
        choose(table, paintings=6)


def test_describe_lists_every_run_and_the_choice() -> None:
    steady = RunSummary("steady", 0.3, 1.4, 1.0, 0.31, 1.45, 0.95)
    melting = RunSummary("melting", 0.2, 1.9, 1.0, 0.2, 2.0, 1.0)
    text = describe([steady, melting], steady)
    assert "| steady | 0.300 (0.310) | 1.400 (1.450) | 1.000 (0.950) | yes | 6.7 % |" in text
    assert "| melting | 0.200 (0.200) | 1.900 (2.000) | 1.000 (1.000) | no | -26.7 % |" in text
    assert text.rstrip().endswith("chosen: steady")
    assert "none qualifies" in describe([melting], None)


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    app.command()(commands.choose_setting)
    return app


def test_the_command_prints_the_table_and_the_choice(app: typer.Typer, tmp_path: Path) -> None:
    path = write_table(tmp_path / "pairs.csv", {"fragile": FRAGILE, "steady": STEADY, "sturdy": STURDY})
    result = CliRunner().invoke(app, [str(path), "--paintings", "6", "--draws", "100"])
    assert result.exit_code == 0, result.output
    assert "| steady | 0.300 (0.300) | 1.400 (1.400) | 1.000 (1.000) | yes | 6.7 % |" in result.output
    assert "| fragile |" in result.output and "| baseline |" not in result.output
    assert "chosen: sturdy" in result.output


def test_the_command_is_registered_under_eval(tmp_path: Path) -> None:
    from app.cli import _register_model_commands, cli

    _register_model_commands()
    path = write_table(tmp_path / "pairs.csv", {"melting": MELTING})
    result = CliRunner().invoke(cli, ["eval", "style-choice", str(path), "--paintings", "6", "--draws", "10"])
    assert result.exit_code == 0, result.output
    assert "chosen: none qualifies" in result.output


def test_the_command_refuses_a_table_without_usable_runs_or_with_a_missing_pair(
    app: typer.Typer, tmp_path: Path
) -> None:
    baseline_only = write_table(tmp_path / "baseline.csv", {})
    refused = CliRunner().invoke(app, [str(baseline_only), "--paintings", "6"])
    assert refused.exit_code == 2 and "no run with ratios" in refused.output
    holed = write_table(tmp_path / "holed.csv", {"steady": STEADY}, skip=1)
    refused = CliRunner().invoke(app, [str(holed), "--paintings", "6"])
    assert refused.exit_code == 2 and "full photo" in refused.output
    too_few = CliRunner().invoke(app, [str(holed), "--paintings", "1"])
    assert too_few.exit_code == 2  # a grid needs two paintings at least
