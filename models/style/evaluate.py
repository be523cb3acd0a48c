"""Held-out evaluation of an AdaIN artifact against a plain AdaIN baseline, its model card, and its packing.

Each metric is a mean over held-out content × style pairs, both center squares of ``size`` px; lower is better:

- ``style_loss`` and ``content_loss``: the AdaIN paper's losses measured by the loss network (loss_network.py);
- ``baseline_*``: the same for plain AdaIN through the loss network's own encoder and a reconstruction decoder
  (the compressed VGG19's ``decoder_relu4_1.pth``, never trained for AdaIN: it stylizes only mildly);
- ``style_ratio`` = style_loss / baseline_style_loss (target <= 0.5), ``content_ratio`` likewise (target <= 2);
- ``reconstruction_mse``: pixel MSE of decode(encode(content)), what alpha = 0 returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch.nn import functional as F

from models.artifact import MANIFEST_NAME, InputSpec, Manifest, Provenance, load_artifact, pack_artifact
from models.predictor import save_state
from models.provenance import git_commit
from models.style.adain import adaptive_instance_normalization
from models.style.images import image_to_tensor, tensor_to_image
from models.style.loss_network import (
    LossNetwork,
    content_loss,
    decoder_from_state,
    load_loss_network,
    read_state_dict,
    style_loss,
)
from models.style.network import Decoder, VGGEncoder
from models.style.predictor import ARCHITECTURE, DECODER_FILE, ENCODER_FILE, StyleTransfer
from models.style.starter import style_hyperparameters

if TYPE_CHECKING:
    from models.style.train import StyleTrainConfig

# Held out from training, used by evaluation: a portrait, a landscape, a seascape; a cubist and a fauvist
# painting, an abstract and a pencil drawing (none has a cropped duplicate left in training).
HELD_OUT_CONTENT = ("brad_pitt", "golden_gate", "sailboat")
HELD_OUT_STYLES = ("asheville", "la_muse", "sketch", "woman_with_hat_matisse")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
CARD_NAME = "MODEL_CARD.md"
GRID_PNG = "style_grid.png"
TARGETS = {"style_ratio": "<= 0.5", "content_ratio": "<= 2"}


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted so that every machine sees the same order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def split_held_out(paths: Sequence[Path], names: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """(training, held out): the files whose stem is in ``names``; when none is, the last quarter (at least 1)."""
    held = [p for p in paths if p.stem in names]
    if not held and len(paths) >= 2:
        held = list(paths[len(paths) - max(1, len(paths) // 4) :])
    return [p for p in paths if p not in held], held


def square_image(path: Path, size: int, device: torch.device) -> torch.Tensor:
    """The center square of the image at ``path``, resized to (1, 3, size, size) in [0, 1]."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    square = rgb.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    return image_to_tensor(square, device)


def default_baseline_decoder(loss_network: Path) -> Path | None:
    """The reconstruction decoder beside a loss network file (``encoder_*`` → ``decoder_*``, or ``decoder.pth``)."""
    for name in (loss_network.name.replace("encoder", "decoder"), "decoder.pth"):
        candidate = loss_network.with_name(name)
        if candidate != loss_network and candidate.is_file():
            return candidate
    return None


def adain_pass(encoder: VGGEncoder, decoder: Decoder, contents: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Plain AdaIN (alpha 1) of contents (N, 3, S, S) with one style (1, 3, S, S), clamped to [0, 1]."""
    content_feat = encoder(contents)  # (N, C4, S/8, S/8)
    style_feat = encoder(style).expand(content_feat.shape[0], -1, -1, -1)  # (N, C4, S/8, S/8)
    return decoder(adaptive_instance_normalization(content_feat, style_feat)).clamp(0.0, 1.0)


def pair_losses(
    loss_net: LossNetwork, outputs: torch.Tensor, contents: torch.Tensor, style: torch.Tensor
) -> tuple[float, float]:
    """(style loss, content loss) of outputs (N, 3, S, S) for contents (N, 3, S, S) and one style (1, 3, S, S)."""
    style_feats = [f.expand(outputs.shape[0], -1, -1, -1) for f in loss_net(style)]  # 4 × (N, C_n, ...)
    target = adaptive_instance_normalization(loss_net(contents)[-1], style_feats[-1])  # (N, 512, S/8, S/8)
    output_feats = loss_net(outputs)
    return style_loss(output_feats, style_feats).item(), content_loss(output_feats[-1], target).item()


def _mean_losses(
    networks: tuple[VGGEncoder, Decoder], loss_net: LossNetwork, contents: torch.Tensor, styles: list[torch.Tensor]
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean losses over every (content, style) pair, and the outputs, one (N, 3, S, S) per style."""
    encoder, decoder = networks
    outputs = [adain_pass(encoder, decoder, contents, style) for style in styles]
    losses = [pair_losses(loss_net, output, contents, style) for output, style in zip(outputs, styles, strict=True)]
    reconstruction = F.mse_loss(decoder(encoder(contents)).clamp(0.0, 1.0), contents).item()
    return {
        "style_loss": sum(s for s, _ in losses) / len(losses),
        "content_loss": sum(c for _, c in losses) / len(losses),
        "reconstruction_mse": reconstruction,
    }, outputs


def evaluate_with_grid(
    artifact_folder: Path,
    loss_network: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    size: int = 256,
    baseline_decoder: Path | None = None,
    device: torch.device | None = None,
) -> tuple[dict[str, float], Image.Image]:
    """The metrics (module docstring) and the content × style grid of the artifact's outputs."""
    assert content_images and style_images, "need at least one content and one style image"
    device = device or torch.device("cpu")
    transfer = StyleTransfer.from_artifact(artifact_folder, load_artifact(artifact_folder), device).eval()
    loss_net = load_loss_network(loss_network, device)
    with torch.inference_mode():
        contents = torch.cat([square_image(p, size, device) for p in content_images])  # (Nc, 3, S, S)
        styles = [square_image(p, size, device) for p in style_images]
        metrics, outputs = _mean_losses((transfer.encoder, transfer.decoder), loss_net, contents, styles)
        baseline_path = baseline_decoder or default_baseline_decoder(loss_network)
        if baseline_path is not None:
            baseline = (loss_net.encoder, decoder_from_state(read_state_dict(baseline_path)).to(device).eval())
            reference, _ = _mean_losses(baseline, loss_net, contents, styles)
            metrics |= {f"baseline_{key}": value for key, value in reference.items()}
            metrics["style_ratio"] = metrics["style_loss"] / max(reference["style_loss"], 1e-12)
            metrics["content_ratio"] = metrics["content_loss"] / max(reference["content_loss"], 1e-12)
    metrics["n_pairs"] = float(len(content_images) * len(style_images))
    return metrics, style_grid(contents, styles, outputs)


def evaluate_style(
    artifact_folder: Path,
    loss_network: Path,
    content_images: Sequence[Path],
    style_images: Sequence[Path],
    size: int = 256,
    baseline_decoder: Path | None = None,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Style and content losses of the artifact and of the plain AdaIN baseline on held-out pairs, and ratios."""
    args = (artifact_folder, loss_network, content_images, style_images, size, baseline_decoder, device)
    return evaluate_with_grid(*args)[0]


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


def write_style_card(
    out_dir: Path, metrics: dict[str, float], grid: Image.Image, manifest: Manifest | None = None
) -> Path:
    """Write ``MODEL_CARD.md`` (metrics table, targets, provenance) and the grid PNG into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    grid.save(out_dir / GRID_PNG)
    title = f"{manifest.name} {manifest.version}" if manifest else "AdaIN style transfer"
    lines = [f"# Model card: {title}", ""]
    if manifest is not None:
        recipe = {k: v for k, v in manifest.hyperparameters.items() if k != "history"}
        lines += [
            f"- Provenance: {manifest.provenance.method}",
            f"- Data: {manifest.provenance.data}",
            f"- Command: `{manifest.provenance.command}`; commit: {manifest.provenance.commit}",
            f"- Hyper-parameters: `{json.dumps(recipe, sort_keys=True)}`",
            "",
        ]
    lines += ["## Metrics (held-out content × style pairs; lower is better)", "", "| metric | value | target |"]
    lines += ["|---|---|---|", *(f"| {k} | {v:.4g} | {TARGETS.get(k, '')} |" for k, v in metrics.items())]
    lines += ["", "Losses are the AdaIN paper's, measured by the loss network; the baseline is plain AdaIN through"]
    lines += ["the loss network's encoder and its reconstruction decoder.", "", f"![content × style grid]({GRID_PNG})"]
    lines += ["", "First row: styles; first column: contents. Check the grid by eye: the losses reward texture."]
    path = out_dir / CARD_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; clear a previous AdaIN artifact, refuse to mix with anything else."""
    out_dir.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in out_dir.iterdir() if p.name not in {ENCODER_FILE, DECODER_FILE, MANIFEST_NAME}]
    strangers = [name for name in strangers if name not in {CARD_NAME, GRID_PNG}]
    if strangers:
        raise FileExistsError(f"{out_dir} holds files that are not an AdaIN artifact: {sorted(strangers)}")
    for path in out_dir.iterdir():
        path.unlink()


def write_trained_artifact(
    cfg: StyleTrainConfig, encoder: VGGEncoder, decoder: Decoder, done: int, history: list[dict[str, float]]
) -> Manifest:
    """Pack float16 weights, evaluate them as served on the held-out pairs, re-pack with metrics, write the card."""
    prepare_out_dir(cfg.out_dir)
    save_state(encoder, cfg.out_dir / ENCODER_FILE)
    save_state(decoder, cfg.out_dir / DECODER_FILE)
    _, contents = split_held_out(list_images(cfg.content_dir), HELD_OUT_CONTENT)
    _, styles = split_held_out(list_images(cfg.style_dir), HELD_OUT_STYLES)
    hyperparameters = style_hyperparameters(cfg.widths) | cfg.recipe() | {"iterations_done": done}
    hyperparameters |= {"held_out": [p.name for p in contents + styles], "history": history}
    fields = {
        "name": cfg.name,
        "version": cfg.version or cfg.out_dir.name,
        "task": "stylize",
        "architecture": ARCHITECTURE,
        "hyperparameters": hyperparameters,
        "input": InputSpec(size=cfg.crop),
        "defaults": {"alpha": 1.0},
        "provenance": _training_provenance(cfg, done, contents + styles),
    }
    manifest = pack_artifact(cfg.out_dir, **fields)
    if not contents or not styles:  # a single content or style image: nothing was held out to evaluate on
        return manifest
    device = torch.device(cfg.device)
    metrics, grid = evaluate_with_grid(cfg.out_dir, cfg.loss_network, contents, styles, cfg.eval_size, device=device)
    manifest = pack_artifact(cfg.out_dir, **fields, metrics=metrics)
    write_style_card(cfg.out_dir, metrics, grid, manifest)  # after packing: the card documents, it is no weight
    return manifest


def _training_provenance(cfg: StyleTrainConfig, done: int, held_out: list[Path]) -> Provenance:
    faces = f" and LFW3D faces ({cfg.faces_dir}, {cfg.face_fraction:.0%} of contents)" if cfg.faces_dir else ""
    return Provenance(
        method=f"trained: AdaIN encoder and decoder from scratch, {done}/{cfg.iterations} iterations of batch "
        f"{cfg.batch_size} at {cfg.crop} px, style weight {cfg.style_weight}; losses from {cfg.loss_network.name}",
        data=f"contents {cfg.content_dir}{faces}; styles {cfg.style_dir}; held out for evaluation: "
        f"{', '.join(p.name for p in held_out)}",
        command=cfg.command,
        commit=git_commit(),
    )
