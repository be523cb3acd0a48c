"""Classical NST beside AdaIN on held-out pairs, by evaluate.py's measures, for the model card.

Per pair (content i, style i) of the evaluated grid's diagonal: AdaIN (one pass, alpha 1) and NST (L-BFGS
with a step bound and a time budget, the service's ``method=nst``), each scored by the style loss to the
painting and the content loss to the photo. Ratios are medians over pairs of NST / AdaIN.

The loss plot is a chart and goes into the artifact; the picture rows show ../shared's photos and paintings, so
they go into the figures folder outside it (``models/figures.py``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from PIL import Image

from models.style.card import NST_IMAGE, NST_PLOT, strip
from models.style.loss_network import LossNetwork
from models.style.measures import pair_losses
from models.style.nst import NeuralStyleTransfer, paint
from models.style.predictor import StyleTransfer

NST_STEPS = 300
NST_SECONDS = 30.0  # per 256 px pair; the service's budget (60 s) is for 512 px


def nst_comparison(
    transfer: StyleTransfer,
    nst: NeuralStyleTransfer,
    loss_net: LossNetwork,
    evaluated: tuple[torch.Tensor, list[torch.Tensor]],
    out_dir: Path,
    pairs: int,
    figures: Path,
) -> dict[str, float]:
    """Measure ``pairs`` diagonal pairs; the loss plot into ``out_dir``, the picture rows into ``figures``."""
    contents, styles = evaluated
    count = min(pairs, contents.shape[0], len(styles))
    rows, adain_losses, nst_losses, steps = [], [], [], []
    for index in range(count):
        content, style = contents[index : index + 1], styles[index]
        with torch.inference_mode():
            adain = transfer.stylize(content, [style], [1.0], 1.0)
        painted, taken = paint(nst.network, content, style, NST_STEPS, NST_SECONDS)
        with torch.inference_mode():
            adain_losses.append(pair_losses(loss_net, adain, content, style)[0])
            nst_losses.append(pair_losses(loss_net, painted, content, style)[0])
        steps.append(taken)
        rows.append(strip([content, style, adain, painted]))
    figures.mkdir(parents=True, exist_ok=True)
    _stack(rows).save(figures / NST_IMAGE, quality=88)
    plot_losses(adain_losses, nst_losses, out_dir / NST_PLOT)
    pairs_ = list(zip(nst_losses, adain_losses, strict=True))
    return {
        "nst_pairs": float(count),
        "nst_style_ratio_to_adain": statistics.median(n[0] / a[0] for n, a in pairs_),
        "nst_content_ratio_to_adain": statistics.median(n[1] / a[1] for n, a in pairs_),
        "nst_median_steps": float(statistics.median(steps)),
    }


def _stack(rows: list[Image.Image]) -> Image.Image:
    """Picture rows one under another."""
    canvas = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), (255, 255, 255))
    top = 0
    for row in rows:
        canvas.paste(row, (0, top))
        top += row.height
    return canvas


def plot_losses(adain: list[tuple[float, float]], nst: list[tuple[float, float]], path: Path) -> None:
    """Content loss against style loss per pair, AdaIN and NST, a line joining each pair's two methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for (a_style, a_content), (n_style, n_content) in zip(adain, nst, strict=True):
        axes.plot([a_style, n_style], [a_content, n_content], color="lightgrey", zorder=1)
    axes.scatter([s for s, _ in adain], [c for _, c in adain], label="AdaIN (one pass)", zorder=2)
    axes.scatter([s for s, _ in nst], [c for _, c in nst], marker="s", label="NST (L-BFGS)", zorder=2)
    axes.set_xlabel("style loss to the painting (lower: more of its manner)")
    axes.set_ylabel("content loss to the photo (lower: more of the photo)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
