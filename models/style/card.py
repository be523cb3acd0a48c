"""The AdaIN model card: metrics against the targets, the content × style grid, an alpha sweep, NST beside AdaIN.

The grid, the sweeps and NST's picture rows show ../shared's photos and paintings: they are drawn into a figures
folder outside the artifact (``models/figures.py``) and the card only describes them. Charts stay in the artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from models.artifact import Manifest
from models.figures import drop_from_artifact, not_shipped
from models.style.images import tensor_to_image
from models.style.predictor import StyleTransfer
from models.style.types import matching_settings

CARD_NAME = "MODEL_CARD.md"
MANNER_PREFIX = "manner_"  # metrics of the manner sweep (evaluate.py): manner_<m>_<metric>
GRID_IMAGE = "style_grid.jpg"
ALPHA_IMAGE = "alpha_sweep.jpg"
MANNER_IMAGE = "manner_sweep.jpg"
MANNERS = (0.0, 0.25, 0.5, 1.0)  # the manner strip's columns
NST_IMAGE = "nst_vs_adain.jpg"  # written by nst_eval.py, into the figures folder
NST_PLOT = "nst_vs_adain_losses.png"  # a chart: in the artifact
DETAIL_PLOT = "preserve_detail.png"  # written by detail.py
TARGETS = {
    "style_ratio": "<= 0.40",
    "content_ratio": "<= 1.5",
    "own_painting_share": ">= 0.90",
    "nst_style_ratio_to_adain": "<= 1",
    "nst_content_ratio_to_adain": "<= 1.5",
}
GRID_SIDE = 4  # contents × styles shown in the grid
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
EVAL_COMMAND = "deepcanvas eval style ARTIFACT … --card"


def style_grid(contents: torch.Tensor, styles: list[torch.Tensor], outputs: list[torch.Tensor]) -> Image.Image:
    """First row the styles, first column the contents, cell (i, j) content i in style j; top-left blank."""
    count, _, side, _ = contents.shape
    grid = Image.new("RGB", ((len(styles) + 1) * side, (count + 1) * side), (255, 255, 255))
    for column, (style, output) in enumerate(zip(styles, outputs, strict=True), start=1):
        grid.paste(tensor_to_image(style), (column * side, 0))
        for row in range(count):
            grid.paste(tensor_to_image(output[row]), (column * side, (row + 1) * side))
    for row in range(count):
        grid.paste(tensor_to_image(contents[row]), (0, (row + 1) * side))
    return grid


def strip(images: list[torch.Tensor]) -> Image.Image:
    """(1, 3, S, S) images side by side."""
    side = images[0].shape[-1]
    canvas = Image.new("RGB", (len(images) * side, side), (255, 255, 255))
    for index, image in enumerate(images):
        canvas.paste(tensor_to_image(image), (index * side, 0))
    return canvas


def alpha_sweep(transfer: StyleTransfer, content: torch.Tensor, style: torch.Tensor) -> Image.Image:
    with torch.inference_mode():
        outputs = [transfer.stylize(content, [style], [1.0], alpha) for alpha in ALPHAS]
    return strip([content, *outputs, style])


def manner_strips(transfer: StyleTransfer, contents: torch.Tensor, styles: list[torch.Tensor]) -> Image.Image:
    """One row per (content, style) pair: content, the outputs at each of ``MANNERS``, then the style."""
    rows = []
    with torch.inference_mode():
        for content, style in zip(contents, styles, strict=False):
            outputs = [transfer.stylize(content[None], [style], [1.0], 1.0, None, m) for m in MANNERS]
            rows.append(strip([content[None], *outputs, style]))
    canvas = Image.new("RGB", (rows[0].width, sum(row.height for row in rows)), (255, 255, 255))
    for index, row in enumerate(rows):
        canvas.paste(row, (0, index * row.height))
    return canvas


def _metric_rows(metrics: dict[str, float]) -> list[str]:
    rows = ["| metric | value | target |", "|---|---|---|"]
    shown = {k: v for k, v in metrics.items() if not k.startswith(MANNER_PREFIX)}
    return rows + [f"| {k} | {v:.4g} | {TARGETS.get(k, '')} |" for k, v in shown.items()]


def _manner_rows(metrics: dict[str, float]) -> list[str]:
    """The ``manner_<m>_<metric>`` entries as a table: one row per manner."""
    table: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(MANNER_PREFIX):
            manner, _, metric = key.removeprefix(MANNER_PREFIX).partition("_")
            table.setdefault(manner, {})[metric] = value
    columns = sorted({metric for row in table.values() for metric in row})
    lines = [f"| manner | {' | '.join(columns)} |", "|---" * (len(columns) + 1) + "|"]
    for manner, row in table.items():
        lines.append(f"| {manner} | {' | '.join(f'{row[c]:.4g}' if c in row else '' for c in columns)} |")
    return lines


def _rivals_note(manifest: Manifest) -> str:
    if manifest.hyperparameters.get("held_out", "v1") == "v1":
        return "two warm, colourful ones among them: the Kandinsky and the flowers"
    return "split.py's rule v2: one image per work, so no copy of a painting is its rival"


def write_style_card(
    out_dir: Path,
    manifest: Manifest,
    metrics: dict[str, float],
    evaluated: tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]],
    transfer: StyleTransfer,
    figures: Path,
) -> Path:
    """Write ``MODEL_CARD.md`` into ``out_dir`` (pack the artifact afterwards: it is hashed) and its pictures, which
    show ../shared's images, into ``figures``, outside the artifact."""
    contents, styles, outputs = evaluated
    drop_from_artifact(out_dir, (GRID_IMAGE, ALPHA_IMAGE, MANNER_IMAGE, NST_IMAGE))
    figures.mkdir(parents=True, exist_ok=True)
    shown = slice(0, GRID_SIDE)
    grid = style_grid(contents[shown], styles[shown], [o[shown] for o in outputs[shown]])
    grid.save(figures / GRID_IMAGE, quality=88)
    first_content = contents[:1]
    alpha_sweep(transfer, first_content, styles[0]).save(figures / ALPHA_IMAGE, quality=88)
    if transfer.matching is not None:  # v1's grid: two warm, colourful paintings and one unlike them, on three photos
        picked = [styles[i] for i in (0, 1, min(4, len(styles) - 1))]
        manner_strips(transfer, contents[:3], picked).save(figures / MANNER_IMAGE, quality=88)
    model = f"{manifest.name}/{manifest.version}"
    recipe = {k: v for k, v in manifest.hyperparameters.items() if k not in {"history", "lineage"}}
    lines = [
        f"# Model card: {manifest.name} {manifest.version}",
        "",
        "Arbitrary style transfer with AdaIN (Huang & Belongie 2017): a VGG19-like encoder to relu4_1, adaptive",
        "instance normalisation of its features to the style's channel statistics, and a decoder back to pixels.",
        "",
        f"- Provenance: {manifest.provenance.method}",
        f"- Data: {manifest.provenance.data}",
        f"- Command: `{manifest.provenance.command}`; commit: {manifest.provenance.commit}",
        f"- Lineage (base first): `{json.dumps(manifest.hyperparameters.get('lineage', []))}`",
        f"- Hyper-parameters: `{json.dumps(recipe, sort_keys=True)}`",
        "- Licence: the encoder is the compressed VGG19 of MingSun-Tse/Collaborative-Distillation (MIT, see",
        "  `LICENSE` in this folder) when the lineage starts from `deepcanvas models import-vgg`.",
        "",
        f"## Metrics ({int(metrics.get('n_pairs', 0))} held-out content × style pairs at {contents.shape[-1]} px)",
        "",
        *_metric_rows(metrics),
        "",
        "Style: Σ over relu1_1…relu4_1 of the MSE of channel means and stds between output and style; content:",
        "MSE of relu4_1 between output and content photo; both measured by the compressed VGG19 with its `_aux`",
        "heads. Ratios are medians over pairs of ours / the baseline's (plain AdaIN through the imported",
        "compressed encoder and its reconstruction decoder). Lower is better; the losses reward texture, so look",
        "at the pictures too.",
        "",
        "Each painting its own manner (`models/style/manner.py`): `own_painting_share` is the share of (photo,",
        f"painting i) outputs whose style loss is lowest to painting i among all the grid's {len(styles)} paintings",
        f"({_rivals_note(manifest)}); `colour_hist_distance` the mean Hellinger",
        "distance between the RGB histograms of each output and its painting; `palette_spread` the mean distance",
        "between one photo's outputs under different paintings, beside `painting_palette_spread`, the same between",
        "the paintings themselves (a decoder that washed every style toward one palette would show a far smaller",
        "spread).",
        "",
        "## Content × style grid (held out: never trained on)",
        "",
        f"`{GRID_IMAGE}`: first row the styles, first column the contents, each cell that content in that style.",
        not_shipped([GRID_IMAGE], EVAL_COMMAND, model),
        "",
        "## Alpha sweep",
        "",
        f"`{ALPHA_IMAGE}`: content, then alpha {', '.join(str(a) for a in ALPHAS)}, then the style.",
        not_shipped([ALPHA_IMAGE], EVAL_COMMAND, model),
        "",
    ]
    lines += _matching_section(manifest, metrics)
    lines += _nst_section(metrics, manifest, (out_dir / NST_PLOT).exists()) if "nst_pairs" in metrics else []
    lines += _detail_section() if (out_dir / DETAIL_PLOT).exists() else []
    path = out_dir / CARD_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def _matching_section(manifest: Manifest, metrics: dict[str, float]) -> list[str]:
    settings = matching_settings(manifest)
    if settings is None:
        return []
    sweep = _manner_rows(metrics) if any(k.startswith(MANNER_PREFIX) for k in metrics) else []
    default = f"{settings.strength:g}"
    if settings.own is not None:
        own = settings.own
        default = (
            f"each painting's own: the largest of {', '.join(f'{m:g}' for m in own.manners)} whose median content "
            f"ratio to plain AdaIN on its {len(own.references)} reference photos stays within {own.content_bound:g} "
            "(a manner m below 0 paints at alpha times 1 + m with no matching; where even the lowest exceeds the "
            "bound, the lowest), measured once per painting (`models/style/own_manner.py`)"
        )
    return [
        "",
        "## manner: each painting's own palette and marks",
        "",
        f"`manner` (a `POST /stylize` field, 0 to 1; this artifact's default {default}) sets how far",
        "the decoder's activations move toward the painting's own at every scale. Measured on the same held-out",
        "pairs as the table above, through the same networks:",
        "",
        *sweep,
        "",
        f"`{MANNER_IMAGE}`: each row the photo, then manner {', '.join(f'{m:g}' for m in MANNERS)}, then the painting.",
        not_shipped([MANNER_IMAGE], EVAL_COMMAND, f"{manifest.name}/{manifest.version}"),
        "",
        f"How: after each of the decoder's ReLUs {list(settings.layers)} its activations move `manner` of the way",
        "to the channel means and stds the same layer has when it decodes the painting's own features",
        "(`models/style/matching.py`; `alpha` scales it, so alpha 0 is still the photo's reconstruction). A",
        "painting's statistics cost one more decoder pass, once, when a request first asks for manner: they are",
        "cached beside its relu4_1 statistics.",
        "How the default was chosen, on validation pairs only, and what the test pairs then showed: `docs/style.md`.",
    ]


def _nst_section(metrics: dict[str, float], manifest: Manifest, plotted: bool) -> list[str]:
    return [
        "",
        "## Classical NST beside AdaIN",
        *(["", f"![nst losses]({NST_PLOT})"] if plotted else []),
        "",
        f"`{NST_IMAGE}`: rows of content, style, AdaIN (one pass), Gatys NST (`method=nst`: L-BFGS from the content,",
        "Gram style loss on relu1_1…relu5_1 of the compressed VGG19 through its `_aux` heads, content on its relu4_2,",
        f"total variation), on {int(metrics.get('nst_pairs', 0))} held-out pairs at 256 px.",
        not_shipped([NST_IMAGE], f"{EVAL_COMMAND} --nst-pairs N", f"{manifest.name}/{manifest.version}"),
        "The plot: each pair's losses by the measures above, AdaIN and NST joined by a line; the ratios (medians of",
        "NST / AdaIN) are in the table.",
    ]


def _detail_section() -> list[str]:
    return [
        "",
        f"## preserve_detail against alpha on faces\n\n![preserve_detail]({DETAIL_PLOT})",
        "",
        "Face photos × held-out paintings: median dlib identity distance between photo and output (below 0.6",
        "dlib calls them the same person) against the median style loss, for alpha lowered from 1 (preserve_detail",
        "0) and for preserve_detail raised from 0 (alpha 1). A curve lower at the same style loss keeps identity",
        "better at equal style strength. preserve_detail (`adain.detail_preserving_decode`: the photo's decoder",
        "features at relu3_1 and relu2_1 resolution, re-normalised to the painted ones, blended in) lies above",
        "alpha's curve, so the service has no such knob: lower `alpha` to keep a face (`models/style/detail.py`).",
    ]
