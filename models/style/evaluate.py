"""Held-out evaluation of an AdaIN artifact against a baseline artifact, as the AdaIN paper measures it.

Per held-out (content, style) pair, both center squares of ``size`` px, with the loss network L (the
compressed VGG19 with its ``_aux`` heads, VGG19's widths):

- ``style``: Σ over relu1_1…relu4_1 of the MSE of channel means and of channel stds of L(output) and L(style);
- ``content``: MSE of relu4_1 between L(output) and L(content photo);
- ``*_ratio``: the median over pairs of ours / baseline's, the baseline being plain AdaIN through another
  artifact (the imported compressed VGG19 and its reconstruction decoder); ``mean_*`` the means of the losses;
- ``reconstruction_mse``: pixel MSE of decode(encode(content)), what alpha = 0 returns;
- ``own_painting_share``, ``colour_hist_distance``, ``palette_spread``: does each painting leave its own
  manner (manner.py).

Outputs come from a ``Stylizer``: the artifact's own networks, or the HTTP API of a running service.
"""

from __future__ import annotations

import csv
import hashlib
import io
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from models.artifact import Manifest, load_artifact
from models.style.card import write_style_card
from models.style.images import image_to_tensor, tensor_to_image
from models.style.loss_network import LossNetwork, load_loss_network
from models.style.manner import Statistics, concatenated, feature_statistics, manner_metrics, own_painting
from models.style.measures import losses_from_features, square_image
from models.style.nst import NeuralStyleTransfer
from models.style.nst_eval import nst_comparison
from models.style.own_manner import OwnManner
from models.style.predictor import StyleTransfer
from models.style.split import DEFAULT_RULE, VALIDATION_MAX, held_out_contents, held_out_styles, v2_grid
from models.style.style_cache import StyleKey

# (contents (N, 3, S, S), style (1, 3, S, S)) -> outputs (N, 3, S, S) in [0, 1], each content in the style
Stylizer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CHUNK = 16  # contents stylized and measured at once (a batch: 256 px activations of 16 fit in a few hundred MB)
EVAL_COUNT = 8  # held-out contents and styles evaluated: 64 pairs
MANNER_SWEEP = (0.0, 0.25, 0.5, 1.0)  # the card's manner table (artifacts with decoder-side matching)
SWEPT_METRICS = ("style_ratio", "content_ratio", "own_painting_share", "colour_hist_distance")


def spread(paths: Sequence[Path], count: int) -> list[Path]:
    """``count`` paths evenly spread over ``paths`` (all of them when there are fewer)."""
    if len(paths) <= count:
        return list(paths)
    step = len(paths) / count
    return [paths[int(index * step)] for index in range(count)]


def evaluation_images(
    content_dir: Path, style_dir: Path, count: int = EVAL_COUNT, rule: str = DEFAULT_RULE
) -> tuple[list[Path], list[Path]]:
    """The held-out contents and styles the test grid (the card) uses: under v1, ``count`` of each; under v2,
    every test work of split.py's (``count`` does not apply)."""
    if rule == "v2":
        return v2_grid(content_dir, "content", "test"), v2_grid(style_dir, "style", "test")
    return spread(held_out_contents(content_dir), count), spread(held_out_styles(style_dir), count)


def validation_images(
    content_dir: Path,
    style_dir: Path,
    count: int | None = EVAL_COUNT,
    rule: str = DEFAULT_RULE,
    photos: int | None = None,
) -> tuple[list[Path], list[Path]]:
    """Held-out contents and styles that evaluation does not report, ``count`` of each: for choosing settings.

    v1: every count up to ``VALIDATION_MAX`` draws from the same ``VALIDATION_MAX`` images of each (a smaller
    split is a subset of the larger: ``spread`` keeps every other pick), so none reaches ``unseen_images``.
    v2: ``count`` of split.py's validation works, spread (None: all of them); ``photos``, when given, spreads the
    photos alone (a painting's draw moves the measures most: keep every painting, fewer photos).
    """
    if rule == "v2":
        contents, styles = v2_grid(content_dir, "content", "validation"), v2_grid(style_dir, "style", "validation")
        if count is not None:
            contents, styles = spread(contents, count), spread(styles, count)
        return (contents, styles) if photos is None else (spread(contents, photos), styles)
    count = count or EVAL_COUNT
    assert 0 < count <= VALIDATION_MAX, f"the validation split takes 1 to {VALIDATION_MAX} of each, not {count}"
    contents, styles = _beyond_test(content_dir, style_dir)
    wide_contents, wide_styles = spread(contents, VALIDATION_MAX), spread(styles, VALIDATION_MAX)
    return spread(wide_contents, count), spread(wide_styles, count)


def unseen_images(content_dir: Path, style_dir: Path, rule: str = DEFAULT_RULE) -> tuple[list[Path], list[Path]]:
    """v1's held-out contents and styles that neither the test grid nor the largest validation split uses.

    A second test: when a setting is chosen on validation after the test grid's numbers were seen for it,
    these pairs are the ones nobody has looked at. v2 has none: its test and validation take every held-out work.
    """
    if rule != "v1":
        raise ValueError(f"the {rule} rule has no unseen split: its test and validation take every held-out work")
    contents, styles = _beyond_test(content_dir, style_dir)
    wide_contents, wide_styles = spread(contents, VALIDATION_MAX), spread(styles, VALIDATION_MAX)
    return [p for p in contents if p not in wide_contents], [p for p in styles if p not in wide_styles]


def _beyond_test(content_dir: Path, style_dir: Path) -> tuple[list[Path], list[Path]]:
    """v1's held-out contents and styles that its test grid does not use, in their sorted order."""
    contents, styles = evaluation_images(content_dir, style_dir)
    other_contents = [p for p in held_out_contents(content_dir) if p not in contents]
    other_styles = [p for p in held_out_styles(style_dir) if p not in styles]
    return other_contents, other_styles


Manner = float | OwnManner  # a fixed manner, or each painting's own under a bound (own_manner.py)


def run_name(manner: Manner) -> str:
    """A run's name in the metrics and the per-pair table: ``manner_<m>`` or ``own_<bound>``."""
    return f"own_{manner.content_bound:g}" if isinstance(manner, OwnManner) else f"manner_{manner:g}"


def style_cache_key(style: torch.Tensor) -> StyleKey:
    """A style's key in the predictor's caches: a digest of its pixels and its size."""
    digest = hashlib.blake2b(style.cpu().numpy().tobytes(), digest_size=20).digest()
    return digest, (int(style.shape[-2]), int(style.shape[-1]))


def adain_stylizer(transfer: StyleTransfer, manner: Manner | None = None) -> Stylizer:
    """AdaIN (alpha 1, ``manner`` or the artifact's default) through ``transfer``'s networks, clamped to [0, 1].

    The contents go through as one batch (AdaIN normalises each by its own statistics; the matching's targets are
    the style's, shared). A style's statistics are computed once and kept in ``transfer``'s cache under a digest of
    its pixels, as the service keeps a gallery style's: a grid stylizes every photo with each painting."""

    def stylize(contents: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return transfer.stylize(contents, [style], [1.0], 1.0, [style_cache_key(style)], manner)

    return stylize


def painting_manners(transfer: StyleTransfer, styles: Sequence[torch.Tensor], manner: Manner | None) -> list[float]:
    """The manner each painting got under ``manner`` (None: the artifact's default; below 0, a painting's own
    that softens it: ``own_manner.applied``); after a run, from the caches."""
    return [transfer.resolve_manner([style], [style_cache_key(style)], [1.0], manner) for style in styles]


def load_transfer(folder: Path, device: torch.device) -> StyleTransfer:
    return StyleTransfer.from_artifact(folder, load_artifact(folder), device).eval()


def http_stylizer(url: str, timeout: float = 120.0, manner: float | None = None) -> Stylizer:
    """AdaIN through a running service's ``POST /stylize``, the way a user calls it (PNG in, PNG out)."""
    import httpx

    def png(tensor: torch.Tensor) -> bytes:
        buffer = io.BytesIO()
        tensor_to_image(tensor).save(buffer, format="PNG")
        return buffer.getvalue()

    def one(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        files = {"content": ("content.png", png(content), "image/png"), "style": ("style.png", png(style), "image/png")}
        data = {"alpha": "1", "max_side": str(content.shape[-1]), "format": "png"}
        data |= {"manner": str(manner)} if manner is not None else {}
        response = httpx.post(f"{url.rstrip('/')}/stylize", files=files, data=data, timeout=timeout)
        response.raise_for_status()
        with Image.open(io.BytesIO(response.content)) as image:
            return image_to_tensor(image.convert("RGB"), content.device)

    return lambda contents, style: torch.cat([one(content, style) for content in contents.split(1)])


class Measured(NamedTuple):
    losses: list[tuple[float, float]]  # (style loss, content loss) of every pair, style-major
    outputs: list[torch.Tensor]  # one (Nc, 3, S, S) per style
    statistics: list[Statistics]  # per style, the outputs' loss-network channel statistics (manner.py's)


def pairwise_losses(
    stylizer: Stylizer, loss_net: LossNetwork, contents: torch.Tensor, styles: list[torch.Tensor]
) -> Measured:
    """Every (content, style) pair stylized and measured, ``CHUNK`` contents at a time: one loss-network pass over
    each output serves the losses and the own-painting measure, and the contents' features serve every style."""
    measured = Measured([], [], [])
    content_relu4 = torch.cat([loss_net(chunk)[-1] for chunk in contents.split(CHUNK)])
    for style in styles:
        style_feats = loss_net(style)
        outputs, statistics = [], []
        for start in range(0, len(contents), CHUNK):
            outputs.append(stylizer(contents[start : start + CHUNK], style))
            output_feats = loss_net(outputs[-1])
            measured.losses.extend(
                losses_from_features(output_feats, style_feats, content_relu4[start : start + CHUNK])
            )
            statistics.append(feature_statistics(output_feats))
        measured.outputs.append(torch.cat(outputs))
        measured.statistics.append(concatenated(statistics))
    return measured


def summarise(ours: list[tuple[float, float]], baseline: list[tuple[float, float]] | None) -> dict[str, float]:
    metrics = {
        "mean_style_loss": statistics.fmean(s for s, _ in ours),
        "mean_content_loss": statistics.fmean(c for _, c in ours),
        "n_pairs": float(len(ours)),
    }
    if baseline is not None:
        metrics["baseline_mean_style_loss"] = statistics.fmean(s for s, _ in baseline)
        metrics["baseline_mean_content_loss"] = statistics.fmean(c for _, c in baseline)
        pairs = list(zip(ours, baseline, strict=True))
        metrics["style_ratio"] = statistics.median(o[0] / max(b[0], 1e-12) for o, b in pairs)
        metrics["content_ratio"] = statistics.median(o[1] / max(b[1], 1e-12) for o, b in pairs)
    return metrics


# per run ("default": the artifact's manner, "baseline", "manner_<m>"): (style loss, content loss) of every
# pair, style-major
PairLosses = dict[str, list[tuple[float, float]]]


# per run: is each pair's output nearest its own painting among the grid's (manner.own_painting), style-major
PairFlags = dict[str, list[bool]]


def write_pair_table(
    path: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    runs: PairLosses,
    own: PairFlags | None = None,
) -> int:
    """One CSV row per (run, photo, painting): its losses and, where a baseline ran, its ratios to the baseline's on
    the same pair (the medians of which are the metrics), and whether the output is nearest its own painting (where
    ``own`` has the run). Images are named ``folder/file``, since file names repeat across the corpus's sets.
    Returns the rows written."""
    baseline = runs.get("baseline")
    pairs = [(style, content) for style in style_images for content in content_images]  # style-major
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["run", "photo", "painting", "style_loss", "content_loss", "style_ratio", "content_ratio"]
        writer.writerow([*header, "own_painting"])
        references: Sequence[tuple[float, float] | None] = baseline or [None] * len(pairs)
        for run, losses in runs.items():
            flags: Sequence[bool | None] = (own or {}).get(run) or [None] * len(pairs)
            for (style, content), pair, reference, flag in zip(pairs, losses, references, flags, strict=True):
                ratios = ["", ""]
                if reference is not None:
                    ratios = [f"{loss / max(base, 1e-12):.6g}" for loss, base in zip(pair, reference, strict=True)]
                names = [f"{image.parent.name}/{image.name}" for image in (content, style)]  # stems repeat across sets
                nearest = "" if flag is None else str(int(flag))
                writer.writerow([run, *names, *(f"{loss:.6g}" for loss in pair), *ratios, nearest])
    return len(runs) * len(pairs)  # every run has a row per pair, or zip(strict=True) raised


def evaluate_with_outputs(
    artifact_folder: Path,
    loss_network: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    size: int = 256,
    baseline: Path | None = None,
    device: torch.device | None = None,
    url: str | None = None,
    manner: float | None = None,
) -> tuple[dict[str, float], torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The metrics (module docstring), and the contents, styles and outputs (one (Nc, 3, S, S) per style)."""
    device = device or torch.device("cpu")
    transfer = load_transfer(artifact_folder, device)
    return evaluate_transfer(transfer, loss_network, content_images, style_images, size, baseline, url, manner)


def evaluate_transfer(
    transfer: StyleTransfer,
    loss_network: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    size: int = 256,
    baseline: Path | None = None,
    url: str | None = None,
    manner: Manner | None = None,
    manners: Sequence[Manner] = (),
    pair_losses: PairLosses | None = None,
    pair_flags: PairFlags | None = None,
) -> tuple[dict[str, float], torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``evaluate_with_outputs`` for networks already loaded (on their device); ``manner``: the decoder-side
    matching's strength (None: the artifact's default; ``OwnManner``: each painting's own). Each of ``manners``
    adds ``<run_name>_<metric>`` for ``SWEPT_METRICS`` on the same pairs and baseline (the card's manner table),
    and for each painting's own manner the mean manner the paintings got (softening below 0 and matching above
    it on one axis). ``pair_losses`` and ``pair_flags``, when given, receive every run's per-pair losses and
    own-painting flags (``write_pair_table``)."""
    runs: PairLosses = {} if pair_losses is None else pair_losses
    flags: PairFlags = {} if pair_flags is None else pair_flags
    assert content_images and style_images, "need at least one content and one style image"
    assert not (url and isinstance(manner, OwnManner)), "a service paints each painting's own manner by default"
    device = transfer.device
    loss_net = load_loss_network(loss_network, device)
    with torch.inference_mode():
        contents = torch.cat([square_image(p, size, device) for p in content_images])  # (Nc, 3, S, S)
        styles = [square_image(p, size, device) for p in style_images]
        fixed = None if isinstance(manner, OwnManner) else manner
        stylizer = http_stylizer(url, manner=fixed) if url else adain_stylizer(transfer, manner)
        ours = pairwise_losses(stylizer, loss_net, contents, styles)
        outputs = ours.outputs
        default_run = "default" if manner is None else run_name(manner)
        runs[default_run] = ours.losses
        flags[default_run] = own_painting(loss_net, styles, outputs, ours.statistics)
        reference = None
        if baseline is not None:
            baseline_stylizer = adain_stylizer(load_transfer(baseline, device))
            reference = runs["baseline"] = pairwise_losses(baseline_stylizer, loss_net, contents, styles).losses
        metrics = summarise(ours.losses, reference)
        metrics |= manner_metrics(loss_net, styles, outputs, ours.statistics, flags[default_run])
        for swept_manner in manners:
            swept_run = pairwise_losses(adain_stylizer(transfer, swept_manner), loss_net, contents, styles)
            name = run_name(swept_manner)
            runs[name] = swept_run.losses
            flags[name] = own_painting(loss_net, styles, swept_run.outputs, swept_run.statistics)
            swept = summarise(swept_run.losses, reference)
            swept |= manner_metrics(loss_net, styles, swept_run.outputs, swept_run.statistics, flags[name])
            if isinstance(swept_manner, OwnManner):
                swept["mean_manner"] = statistics.fmean(painting_manners(transfer, styles, swept_manner))
            metrics |= {f"{name}_{key}": swept[key] for key in (*SWEPT_METRICS, "mean_manner") if key in swept}
        squared = sum(
            (transfer.decoder(transfer.encoder(chunk)).clamp(0.0, 1.0) - chunk).pow(2).sum().item()
            for chunk in contents.split(CHUNK)
        )
        metrics["reconstruction_mse"] = squared / contents.numel()
    return metrics, contents, styles, outputs


def evaluate_style(
    artifact_folder: Path,
    loss_network: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    size: int = 256,
    baseline: Path | None = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Losses of the artifact (and ratios to the baseline artifact's) on held-out pairs."""
    return evaluate_with_outputs(artifact_folder, loss_network, content_images, style_images, size, baseline, device)[0]


def write_evaluation(
    out_dir: Path,
    manifest: Manifest,
    loss_network: Path,
    contents: Sequence[Path],
    styles: Sequence[Path],
    size: int,
    baseline: Path | None = None,
    device: torch.device | None = None,
    nst_pairs: int = 0,
    *,
    figures: Path,
) -> dict[str, float]:
    """Evaluate the artifact in ``out_dir`` and write its model card there; returns the metrics.

    The card's pictures show ../shared's images: they go into ``figures``, outside the artifact. ``nst_pairs`` > 0
    also measures classical NST beside AdaIN on that many held-out pairs (nst_eval.py).
    """
    transfer = load_transfer(out_dir, device or torch.device("cpu"))
    manners = MANNER_SWEEP if transfer.matching is not None else ()  # the trade-off a user's manner chooses
    evaluated = evaluate_transfer(transfer, loss_network, contents, styles, size, baseline, manners=manners)
    metrics, content_t, style_t, outputs = evaluated
    if nst_pairs > 0:
        nst = NeuralStyleTransfer.from_artifact(out_dir, manifest, transfer.device)
        loss_net = load_loss_network(loss_network, transfer.device)
        metrics |= nst_comparison(transfer, nst, loss_net, (content_t, style_t), out_dir, nst_pairs, figures)
    write_style_card(out_dir, manifest, metrics, (content_t, style_t, outputs), transfer, figures)
    return metrics
