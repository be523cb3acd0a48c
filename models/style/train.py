"""Train an AdaIN decoder (and, from scratch, an encoder) with the paper's losses from a frozen loss network.

Two designs share this loop:

- **From a base artifact** (``base``, the shipped recipe): the encoder is the base's (the imported compressed
  VGG19 to relu4_1, ``deepcanvas models import-vgg``) and stays frozen; the decoder starts from the base's
  decoder (the compressed VGG19's reconstruction decoder, or an earlier trained version) and trains. This is
  how the AdaIN paper works: a pretrained VGG encoder and a trained decoder. Files other than weights and
  cards (the encoder's ``LICENSE``) travel from the base into the new artifact.
- **From scratch** (no base): slim encoder and decoder, He-initialised; 1×1 heads distil the loss network's
  relu{N}_1 into the encoder so its statistics stay VGG-like. Kept for experiments and tiny tests.

Per batch of contents c and styles s, with encoder E, decoder D and loss network L:

- output g = D(AdaIN(E(c), E(s)));
- content loss = MSE(L₄(g), AdaIN(L₄(c), L₄(s))) at relu4_1, style loss = Σ_relu{1..4}_1 MSE of channel
  means and stds of L(g) and L(s) (Huang & Belongie 2017, eq. 11-13, with L's features);
- the last ``self_pairs`` pairs of each batch use their content as style, with a pixel MSE, so that
  alpha = 0 (and weak styles) decode back to the content.

``objective="measures"`` replaces the content and style losses by the mean over pairs of log style loss and log
content loss to the *photo* (not t), as ``deepcanvas eval style`` measures them: each pair then counts by its
relative change, as the card's median ratios do, where the paper's batch sums let a few high-loss pairs steer.

λ = 1, not the paper's 10: the compressed VGG19's features are of order 1 at every layer, and a unit of
content buys only a few units of style (λ = 10 lost the content entirely). ``bf16`` runs the networks under
``torch.autocast`` (bfloat16 convolutions, AMX on this project's CPUs); weights, optimiser and every loss
stay float32. The learning rate warms up linearly over ``warmup`` steps: the first full-size Adam steps
wreck a pretrained decoder.

``ema`` > 0 keeps an exponential moving average of the decoder's weights (``torch.optim.swa_utils``, updated
after every step, checkpointed with the run) and writes it as the artifact: from a trained base, batch-8 steps
on a CPU are noisy enough that single iterates wander around the objective's optimum instead of settling.

Batches are a pure function of (seed, iteration), so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as tvf

from models.artifact import Manifest, load_artifact
from models.predictor import resolve_device
from models.style.adain import adaptive_instance_normalization
from models.style.loss_network import (
    LossNetwork,
    content_loss,
    load_loss_network,
    pair_content_losses,
    pair_style_losses,
    style_loss,
)
from models.style.matching import MatchingDecoder, relu_layers
from models.style.network import Decoder, VGGEncoder
from models.style.packing import write_trained_artifact
from models.style.predictor import DECODER_FILE, ENCODER_FILE, widths_from_manifest
from models.style.split import list_images, training_and_held_out
from models.style.starter import calibrate_output, he_initialised
from models.style.train_config import Objective, StyleTrainConfig
from models.torch_backend import load_state

log = logging.getLogger("deepcanvas.style.train")


@dataclass(frozen=True)
class TrainingImages:
    photos: tuple[Path, ...]
    faces: tuple[Path, ...]
    styles: tuple[Path, ...]


def training_images(cfg: StyleTrainConfig) -> TrainingImages:
    """The content photos and styles minus the held-out ones evaluation uses, and the optional faces."""
    photos = training_and_held_out(cfg.content_dir, "content", cfg.held_out)[0]
    styles = training_and_held_out(cfg.style_dir, "style", cfg.held_out)[0]
    faces = list_images(cfg.faces_dir) if cfg.faces_dir is not None else []
    return TrainingImages(tuple(photos), tuple(faces), tuple(styles))


@functools.lru_cache(maxsize=256)  # small data sets stay decoded; large ones cycle
def decoded(path: Path, max_short: int) -> Image.Image:
    """``path`` as RGB with its shorter side shrunk to ``max_short`` (the release resized to 512 before cropping)."""
    with Image.open(path) as image:
        image.draft("RGB", (max_short, max_short))  # JPEG: decode at a reduced scale when far larger
        rgb = image.convert("RGB")
    scale = max_short / min(rgb.size)
    if scale >= 1.0:
        return rgb
    return rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.LANCZOS)


def random_crop(image: Image.Image, side: int, generator: torch.Generator) -> torch.Tensor:
    """A random square with scale jitter and a random flip, resized to (3, side, side) in [0, 1]."""
    jitter, x, y, flip = torch.rand(4, generator=generator).tolist()
    short = min(image.size)
    # zoom in at most 2x, except on small images (faces), where at least 3/4 of the side is kept
    low = min(max(side / (2 * short), 0.25), 0.75)
    region = short * (low + (1.0 - low) * jitter)
    left, top = x * (image.width - region), y * (image.height - region)
    crop = image.resize((side, side), Image.Resampling.BILINEAR, box=(left, top, left + region, top + region))
    tensor = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)  # (3, side, side)
    return tensor.flip(2) if flip < 0.5 else tensor


def jittered_palette(style: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """``style`` (3, S, S) in [0, 1], with probability ``share`` in another palette: its hue turned by a uniform
    angle and its saturation scaled by 0.6-1.4. Its marks (edges, strokes, texture) stay. Tried as more palettes
    for a decoder that has seen 83 paintings: v12 (docs/style.md) trained with half its styles jittered and lost
    style on every painting, seen or not; kept as an option, off by default. ``share`` 0 draws nothing from
    ``generator``, so runs without it see the batches they always did."""
    if share <= 0.0:
        return style
    draw, hue, saturation = torch.rand(3, generator=generator).tolist()
    if draw >= share:
        return style
    turned = tvf.adjust_hue(style, hue - 0.5)  # a factor in [-0.5, 0.5): a turn of up to half the circle
    return tvf.adjust_saturation(turned, 0.6 + 0.8 * saturation).clamp(0.0, 1.0)


class StyleBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Batch ``i`` of (contents, styles), each (B, 3, crop, crop), a pure function of (seed, i)."""

    def __init__(self, images: TrainingImages, cfg: StyleTrainConfig) -> None:
        assert images.photos and images.styles, "need at least one content photo and one style image"
        assert 0 <= cfg.self_pairs < cfg.batch_size, f"self_pairs must be in [0, batch_size), got {cfg.self_pairs}"
        self.images = images
        self.cfg = cfg

    def __len__(self) -> int:
        return self.cfg.iterations

    def _pick(self, paths: tuple[Path, ...], generator: torch.Generator) -> Image.Image:
        index = int(torch.randint(len(paths), (1,), generator=generator))
        return decoded(paths[index], 2 * self.cfg.crop)

    def _content(self, generator: torch.Generator) -> Image.Image:
        use_face = bool(self.images.faces) and float(torch.rand(1, generator=generator)) < self.cfg.face_fraction
        return self._pick(self.images.faces if use_face else self.images.photos, generator)

    def __getitem__(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
        contents = torch.stack(
            [random_crop(self._content(generator), cfg.crop, generator) for _ in range(cfg.batch_size)]
        )
        styles = [
            jittered_palette(
                random_crop(self._pick(self.images.styles, generator), cfg.crop, generator), cfg.style_jitter, generator
            )
            for _ in range(cfg.batch_size - cfg.self_pairs)
        ]
        # the last pairs are (content, content): they teach the decoder to give back the content
        return contents, torch.cat([torch.stack(styles), contents[cfg.batch_size - cfg.self_pairs :]])


class StyleTrainee(nn.Module):
    """Encoder and decoder (shipped), plus 1×1 heads from E's relu{N}_1 to L's when E trains (training only)."""

    def __init__(self, widths: tuple[int, ...], teacher_widths: tuple[int, ...], base: Path | None = None) -> None:
        super().__init__()
        self.encoder = he_initialised(VGGEncoder(widths))
        self.decoder = he_initialised(Decoder(widths))
        self.frozen_encoder = base is not None
        if base is None:
            pairs = zip(widths, teacher_widths, strict=True)
            self.heads = nn.ModuleList(nn.Conv2d(w, t, (1, 1)) for w, t in pairs)
            calibrate_output(self.encoder, self.decoder)  # untrained outputs start inside [0, 1]
            return
        self.heads = nn.ModuleList()
        manifest = load_artifact(base)
        cpu = torch.device("cpu")
        self.encoder.load_state_dict(load_state(base, manifest, ENCODER_FILE, cpu))
        self.decoder.load_state_dict(load_state(base, manifest, DECODER_FILE, cpu))
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> StyleTrainee:
        super().train(mode)
        if self.frozen_encoder:
            self.encoder.eval()
        return self


def with_base_widths(cfg: StyleTrainConfig) -> StyleTrainConfig:
    """``cfg`` with the widths of its base artifact's networks, when it has a base."""
    if cfg.base is None:
        return cfg
    return dataclasses.replace(cfg, widths=widths_from_manifest(load_artifact(cfg.base)))


def distillation_loss(heads: nn.ModuleList, ours: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of MSE(ReLU(head(E_n)), L_n) relative to L_n's mean square (scale-free per layer)."""
    total = torch.zeros((), device=ours[0].device)
    for head, feature, target in zip(heads, ours, teacher, strict=True):
        total = total + F.mse_loss(F.relu(head(feature)), target) / target.pow(2).mean().clamp_min(1e-8)
    return total / len(heads)


def training_losses(
    model: StyleTrainee,
    loss_net: LossNetwork,
    content: torch.Tensor,
    style: torch.Tensor,
    self_pairs: int,
    layer_weights: tuple[float, ...] | None = None,
    objective: str = Objective.paper,
    manner: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The unweighted losses of one batch of (content, style) pairs, each (B, 3, S, S), under ``objective``.

    ``manner`` > 0 decodes with decoder-side matching at that strength (``matched_output``), so the decoder
    learns to keep the content under the matching it will be served with.
    """
    batch = content.shape[0]
    with torch.set_grad_enabled(not model.frozen_encoder and torch.is_grad_enabled()):
        ours = model.encoder.encode_with_intermediate(torch.cat([content, style]))  # 4 × (2B, w_n, S/2^n, S/2^n)
    ours = [feature.float() for feature in ours]  # AdaIN statistics in float32, also under autocast
    target = adaptive_instance_normalization(ours[-1][:batch], ours[-1][batch:])  # (B, w_4, S/8, S/8)
    if manner > 0:
        output = matched_output(model.decoder, target, ours[-1][batch:], manner)
    else:
        output = model.decoder(target).float()  # (B, 3, S, S), unclamped as in the paper
    with torch.no_grad():
        teacher = [t.float() for t in loss_net(torch.cat([content, style]))]  # 4 × (2B, C_n, ...)
    output_feats = [f.float() for f in loss_net(output)]  # gradients flow through the frozen loss network
    pixel = F.mse_loss(output[batch - self_pairs :], content[batch - self_pairs :]) if self_pairs else output.sum() * 0
    if objective == Objective.measures:
        losses = measured_losses(output_feats, teacher, batch - self_pairs, layer_weights) | {"pixel": pixel}
    else:
        # the paper's content target t, in the loss network's features (no gradient: the teacher has none)
        teacher_target = adaptive_instance_normalization(teacher[-1][:batch], teacher[-1][batch:])
        losses = {
            "content": content_loss(output_feats[-1], teacher_target),
            "style": style_loss(output_feats, [t[batch:] for t in teacher], layer_weights),
            "pixel": pixel,
        }
    if len(model.heads):  # only an encoder that trains is distilled
        losses["distill"] = distillation_loss(model.heads, ours, teacher)
    return losses


def matched_output(decoder: nn.Sequential, target: torch.Tensor, styles: torch.Tensor, manner: float) -> torch.Tensor:
    """The decoding of ``target`` matched at ``manner`` to the statistics of each style's own reconstruction.

    The styles' statistics are what the served predictor computes (the decoder's plain pass over their relu4_1
    features), taken without gradient: a target the decoder chases, not one it moves. Unclamped, as training
    reads every output.
    """
    matcher = MatchingDecoder(decoder, relu_layers(decoder), clamp=False)
    with torch.no_grad():
        means, stds = matcher.statistics(styles)
    strength = target.new_full((target.shape[0], 1), manner, dtype=torch.float32)
    return matcher(target, means, stds, strength)[0].float()


def measured_losses(
    output_feats: list[torch.Tensor], teacher: list[torch.Tensor], pairs: int, layer_weights: tuple[float, ...] | None
) -> dict[str, torch.Tensor]:
    """Mean log style and log content loss, per pair as evaluation measures them, over the first ``pairs`` pairs.

    ``teacher`` holds the loss network's features of the contents, then the styles (2B images); the self pairs
    after ``pairs`` are left to the pixel loss (their losses are near 0, and the log would blow them up).
    """
    batch = teacher[0].shape[0] // 2
    mine = [feature[:pairs] for feature in output_feats]
    styles = [feature[batch : batch + pairs] for feature in teacher]
    style = pair_style_losses(mine, styles, layer_weights).clamp_min(1e-6)
    content = pair_content_losses(mine[-1], teacher[-1][:pairs]).clamp_min(1e-6)
    return {"content": content.log().mean(), "style": style.log().mean()}


def weighted_total(losses: dict[str, torch.Tensor], cfg: StyleTrainConfig) -> torch.Tensor:
    weights = {"content": cfg.content_weight, "style": cfg.style_weight}
    weights |= {"distill": cfg.distill_weight, "pixel": cfg.pixel_weight}
    return sum((weights[name] * value for name, value in losses.items()), torch.zeros(()).to(losses["style"]))


def learning_rate(cfg: StyleTrainConfig, iteration: int) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then the release's inverse decay."""
    warm = min(1.0, (iteration + 1) / cfg.warmup) if cfg.warmup > 0 else 1.0
    return warm * cfg.lr / (1.0 + cfg.lr_decay * iteration)


def train_step(
    model: StyleTrainee, loss_net: LossNetwork, optimizer: torch.optim.Optimizer, batch: Any, cfg: StyleTrainConfig
) -> dict[str, float]:
    content, style = (tensor.to(cfg.device, non_blocking=True) for tensor in batch)
    device_type = torch.device(cfg.device).type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=cfg.bf16):
        losses = training_losses(
            model, loss_net, content, style, cfg.self_pairs, cfg.style_layer_weights, cfg.objective, cfg.manner
        )
    total = weighted_total(losses, cfg)
    if not math.isfinite(total.item()):
        raise FloatingPointError(f"training loss is {total.item()}: lower lr or style_weight")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {"total": total.item(), **{name: value.item() for name, value in losses.items()}}


Log = list[dict[str, float]]


def decoder_average(cfg: StyleTrainConfig, decoder: Decoder) -> AveragedModel | None:
    """The exponential moving average of ``decoder``'s weights that ``cfg.ema`` asks for (``None`` at 0)."""
    return AveragedModel(decoder, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None


def save_checkpoint(
    cfg: StyleTrainConfig,
    iteration: int,
    model: StyleTrainee,
    optimizer: Any,
    history: Log,
    window: Log,
    average: AveragedModel | None = None,
) -> None:
    """Write atomically (temp file, then rename), so a run killed mid-write keeps the previous checkpoint."""
    payload = {
        "recipe": cfg.recipe(),
        "iteration": iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "history": history,  # a loss mean per checkpoint_every iterations
        "window": window,  # the losses since the last mean, so a resumed run logs the same means
    }
    if average is not None:
        payload["average"] = average.state_dict()  # the averaged decoder and how many steps it has seen
    path = cfg.checkpoint_path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def load_checkpoint(
    cfg: StyleTrainConfig, model: StyleTrainee, optimizer: Any, average: AveragedModel | None = None
) -> tuple[int, Log, Log]:
    """Restore (iteration, history, window) and the modules' state; (0, [], []) when there is no checkpoint.

    Refuses a checkpoint made with another recipe: resuming it would silently train a different model.
    """
    path = cfg.checkpoint_path
    if not path.is_file():
        return 0, [], []
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["recipe"] != cfg.recipe():
        raise ValueError(f"checkpoint {path} was made with another recipe; delete it or restore the config")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"])
    if average is not None:  # the recipe holds ema, so a checkpoint of this recipe has its average
        average.load_state_dict(payload["average"])
    log.info("resuming from %s at iteration %d", path, payload["iteration"])
    return int(payload["iteration"]), list(payload["history"]), list(payload["window"])


def batch_loader(images: TrainingImages, cfg: StyleTrainConfig, start: int) -> DataLoader[Any]:
    return DataLoader(
        StyleBatches(images, cfg),
        batch_size=None,  # each item is already a whole batch, built from its iteration number
        sampler=range(start, cfg.iterations),
        num_workers=cfg.workers,
        pin_memory=cfg.device.startswith("cuda"),
    )


def progress_bar(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, TimeRemainingColumn(), disable=not enabled)


def _describe(losses: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.3f}" for name, value in losses.items())


def _window_mean(window: Log, iteration: int) -> dict[str, float]:
    return {"iteration": float(iteration), **{k: sum(w[k] for w in window) / len(window) for k in window[0]}}


def fit(
    cfg: StyleTrainConfig,
    model: StyleTrainee,
    loss_net: LossNetwork,
    optimizer: torch.optim.Optimizer,
    start: int,
    logs: tuple[Log, Log],
    stop: threading.Event,
    average: AveragedModel | None = None,
) -> int:
    """Train from ``start`` to ``cfg.iterations`` or the time limit; checkpoint every N and on any exit.

    ``average``, when given, takes in the decoder's weights after every step.
    """
    deadline = time.monotonic() + cfg.time_limit_s if cfg.time_limit_s is not None else math.inf
    (history, window), iteration = logs, start
    model.train()
    with progress_bar(cfg.progress) as progress:
        task = progress.add_task("train", total=cfg.iterations, completed=start)
        try:
            for batch in batch_loader(training_images(cfg), cfg, start):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(cfg, iteration)
                window.append(train_step(model, loss_net, optimizer, batch, cfg))
                if average is not None:
                    average.update_parameters(model.decoder)
                iteration += 1
                progress.update(task, advance=1, description=_describe(window[-1]))
                if iteration % cfg.checkpoint_every == 0:
                    history.append(_window_mean(window, iteration))
                    window = []
                    save_checkpoint(cfg, iteration, model, optimizer, history, window, average)
                if stop.is_set() or time.monotonic() > deadline:
                    break
        finally:
            save_checkpoint(cfg, iteration, model, optimizer, history, window, average)  # also when a step raised
    if stop.is_set():
        raise KeyboardInterrupt(f"stopped at iteration {iteration}; checkpoint {cfg.checkpoint_path}")
    return iteration


def train_style(cfg: StyleTrainConfig, stop: threading.Event | None = None) -> Manifest:
    """Train (or resume) up to ``cfg.iterations``, then evaluate and write the artifact to ``cfg.out_dir``.

    Setting ``stop`` (the command does on SIGINT/SIGTERM) ends training after the current step with a
    checkpoint and a ``KeyboardInterrupt``; ``cfg.time_limit_s`` ends it the same way but writes the artifact.
    """
    cfg = with_base_widths(cfg)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # one crop size: let cuDNN pick the fastest convs
    loss_net = load_loss_network(cfg.loss_network, device)
    torch.manual_seed(cfg.seed)
    model = StyleTrainee(cfg.widths, loss_net.feature_widths, cfg.base).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    average = decoder_average(cfg, model.decoder)
    start, history, window = load_checkpoint(cfg, model, optimizer, average)
    stop = stop or threading.Event()
    if start < cfg.iterations:
        done = fit(cfg, model, loss_net, optimizer, start, (history, window), stop, average)
    else:
        done = start
    decoder = model.decoder if average is None else cast(Decoder, average.module)
    return write_trained_artifact(cfg, model.encoder, decoder, done, history)
