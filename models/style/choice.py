"""Choosing a style setting on the validation grid with a margin for which paintings a grid draws.

How much a photo melts depends far more on the painting than on the photo, so a grid's medians move with the
paintings it happens to hold, by more than the margins a choice on one grid's medians keeps (``docs/style.md``).
``choose`` reads the per-pair table ``deepcanvas eval style --pairs`` writes and, for each run, resamples the
grid: ``draws`` times, ``paintings`` of its paintings and as many photos as it has, with replacement (a test grid
of another size is simulated by ``paintings``). A run qualifies when, over the draws, the 90th percentile of its
style ratio and of its content ratio and the 10th percentile of its own-painting share meet the targets. Of those
that qualify, the one with the largest smallest relative margin at the full grid's medians is chosen.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STYLE_BOUND, CONTENT_BOUND, OWN_BOUND = 0.40, 1.5, 0.90  # issue 19's targets


@dataclass(frozen=True)
class RunSummary:
    """One run's measures on the full grid and at the resampled percentiles, and whether it qualifies."""

    run: str
    style_ratio: float
    content_ratio: float
    own_share: float
    style_p90: float
    content_p90: float
    own_p10: float

    @property
    def qualifies(self) -> bool:
        return self.style_p90 <= STYLE_BOUND and self.content_p90 <= CONTENT_BOUND and self.own_p10 >= OWN_BOUND

    @property
    def margin(self) -> float:
        """The smallest relative margin to the three targets at the full grid's measures (negative: one is missed)."""
        return min(
            (STYLE_BOUND - self.style_ratio) / STYLE_BOUND,
            (CONTENT_BOUND - self.content_ratio) / CONTENT_BOUND,
            (self.own_share - OWN_BOUND) / OWN_BOUND,
        )


Table = dict[str, dict[tuple[str, str], tuple[float, float, float]]]  # run -> (photo, painting) -> measures


def read_pairs(path: Path) -> Table:
    """Per run, each pair's (style ratio, content ratio, own-painting flag); runs without ratios are left out."""
    table: Table = defaultdict(dict)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not row["style_ratio"] or not row.get("own_painting"):
                continue  # the baseline, or a table written before own-painting flags
            measures = (float(row["style_ratio"]), float(row["content_ratio"]), float(row["own_painting"]))
            table[row["run"]][(row["photo"], row["painting"])] = measures
    return dict(table)


def summarise_run(
    run: str, pairs: dict[tuple[str, str], tuple[float, float, float]], paintings: int, draws: int, seed: int
) -> RunSummary:
    """``run``'s full-grid measures and their percentiles over ``draws`` resampled grids of ``paintings``."""
    photo_names = sorted({photo for photo, _ in pairs})
    painting_names = sorted({painting for _, painting in pairs})
    grid = np.full((len(photo_names), len(painting_names), 3), np.nan)
    for (photo, painting), measures in pairs.items():
        grid[photo_names.index(photo), painting_names.index(painting)] = measures
    if np.isnan(grid).any():
        raise ValueError(f"run {run}: the table is not a full photo × painting grid")
    rng = np.random.default_rng(seed)
    style, content, own = [], [], []
    for _ in range(draws):
        rows = rng.integers(0, len(photo_names), len(photo_names))
        columns = rng.integers(0, len(painting_names), paintings)
        drawn = grid[rows][:, columns].reshape(-1, 3)
        style.append(float(np.median(drawn[:, 0])))
        content.append(float(np.median(drawn[:, 1])))
        own.append(float(drawn[:, 2].mean()))
    flat = grid.reshape(-1, 3)
    return RunSummary(
        run,
        float(np.median(flat[:, 0])),
        float(np.median(flat[:, 1])),
        float(flat[:, 2].mean()),
        float(np.percentile(style, 90)),
        float(np.percentile(content, 90)),
        float(np.percentile(own, 10)),
    )


def choose(table: Table, paintings: int, draws: int = 500, seed: int = 0) -> tuple[list[RunSummary], RunSummary | None]:
    """Every run's summary, and the chosen one (None when none qualifies)."""
    summaries = [summarise_run(run, pairs, paintings, draws, seed) for run, pairs in table.items()]
    qualified = [summary for summary in summaries if summary.qualifies]
    return summaries, max(qualified, key=lambda summary: summary.margin) if qualified else None


def describe(summaries: list[RunSummary], chosen: RunSummary | None) -> str:
    """A Markdown table of the summaries and the choice."""
    lines = [
        "| run | style ratio (p90) | content ratio (p90) | own-painting share (p10) | qualifies | margin |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.run} | {s.style_ratio:.3f} ({s.style_p90:.3f}) | {s.content_ratio:.3f} ({s.content_p90:.3f}) | "
            f"{s.own_share:.3f} ({s.own_p10:.3f}) | {'yes' if s.qualifies else 'no'} | {100 * s.margin:.1f} % |"
        )
    lines.append(f"\nchosen: {chosen.run if chosen else 'none qualifies (the default stays manner 0)'}")
    return "\n".join(lines) + "\n"
