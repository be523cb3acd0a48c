"""Train FaceNet on LFW gender with an identity-disjoint split, and pack the chosen weights as an artifact.

Class-weighted cross-entropy for the ~3.5:1 imbalance, AdamW with a one-cycle schedule, the epoch
chosen by validation balanced accuracy, the chosen weights evaluated once on the test split. A
checkpoint written after every epoch makes an interrupted run resume where it stopped.

    python -m models.classifier.train DATA_ROOT OUT_DIR --epochs 20 --threads 1

With ``--faces-root`` (and the box cache of ``models.classifier.face_boxes``) the natural faces join the
training mix (``--faces-share`` of each epoch's draws), portraits cropped around jittered detector boxes
the way ``/classify`` crops them; the epoch is then chosen by the mean of the two validation balanced
accuracies. ``--base`` warm-starts from a shipped artifact, ``--hours`` bounds the run's wall-clock time
(warm-up and cosine decay over the budget), ``--bf16`` trains under CPU bfloat16 autocast (float32
weights). After training a temperature is fitted on the validation split, so served scores are calibrated.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from models.artifact import InputSpec, Manifest, Provenance, load_artifact, pack_artifact, repack_artifact
from models.classifier import report
from models.classifier.checkpoint import TrainState, load_checkpoint, save_checkpoint
from models.classifier.data import LABELS, FaceDataset, Sample, class_counts, scan_lfw, split_by_identity
from models.classifier.evaluate import (
    CARD_NAME,
    CONFUSION_PNG,
    ROC_PNG,
    classification_metrics,
    predict_probabilities,
    write_model_card,
)
from models.classifier.face_boxes import file_sha256
from models.classifier.faces import FACES_SPLIT, load_faces, slices
from models.classifier.network import FaceNet
from models.classifier.predictor import ARCHITECTURE, WEIGHTS_FILE, FaceClassifier
from models.classifier.schedule import BudgetSchedule
from models.classifier.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    boxed_train_transform,
    eval_transform,
    jittered_crop,
    train_transform,
)
from models.predictor import resolve_device, save_state
from models.provenance import git_commit, invoked_command

log = logging.getLogger("deepcanvas.classifier.train")

AUGMENTATION = (
    "whole crops: detector-like crop (reflect pad, zoom 0.75-1.2, shift 6%, rotate 8 deg); boxed portraits: "
    "detector box jittered (scale 0.85-1.25, shift 8%, aspect 0.85-1.18) + served margin, rotate 8 deg; all: "
    "flip, colour jitter, grayscale 10%, blur 20%, JPEG q30-95 30%"
)


@dataclass
class TrainConfig:
    data_root: Path
    out_dir: Path
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    input_size: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 256)
    seed: int = 0
    threads: int = 1
    max_train_images: int | None = None
    weight_decay: float = 0.05
    dropout: float = 0.2
    label_smoothing: float = 0.05
    class_weight_power: float = 0.5  # 1: inverse class frequency (balanced), 0: unweighted; 0.5 between
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    crop_margin: float = 0.1
    flip_tta: bool = False  # validate, test and serve each crop with its mirror, probabilities averaged
    workers: int = 0
    checkpoint: Path | None = None  # default: OUT_DIR.parent / "OUT_DIR-name.checkpoint.pt"
    name: str = "face-gender"
    version: str | None = None  # default: OUT_DIR's name
    device: str = "cpu"
    progress: bool = True
    command: str | None = None
    faces_root: Path | None = None  # natural faces ``{crops,portraits}/{female,male}/*.jpg``
    face_boxes: Path | None = None  # their cache of face boxes and hashes (models.classifier.face_boxes)
    faces_share: float = 0.4  # share of each epoch's draws taken from the natural faces
    base: Path | None = None  # artifact folder to warm-start from (its widths and input size are used)
    hours: float | None = None  # wall-clock budget; the schedule decays over it
    bf16: bool = False  # torch.autocast("cpu", bfloat16) for the forward pass; weights stay float32

    def recipe(self) -> dict[str, Any]:
        """The fields that change the result; a checkpoint only resumes a run with the same recipe."""
        skip = {"data_root", "out_dir", "threads", "workers", "checkpoint", "name", "version", "device"}
        skip |= {"progress", "command", "faces_root", "face_boxes", "base"}
        recipe = {k: _plain(v) for k, v in dataclasses.asdict(self).items() if k not in skip}
        if self.faces_root is None:
            recipe.pop("faces_share")
        else:
            recipe["faces_split"] = list(FACES_SPLIT)
        if self.base is not None:
            recipe["base"] = self.base.name
        return recipe

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.out_dir.parent / f"{self.out_dir.name}.checkpoint.pt"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_splits(cfg: TrainConfig) -> tuple[list[Sample], list[Sample], list[Sample]]:
    train, val, test = split_by_identity(scan_lfw(cfg.data_root), cfg.split_fractions, seed=cfg.seed)
    if cfg.max_train_images is not None and len(train) > cfg.max_train_images:
        train = random.Random(cfg.seed).sample(train, cfg.max_train_images)
    return train, val, test


def load_all_splits(cfg: TrainConfig) -> dict[str, list[Sample]]:
    """``train``/``val``/``test`` (LFW) and, with natural faces, ``faces_train``/``faces_val``/``faces_test``."""
    data = dict(zip(("train", "val", "test"), load_splits(cfg), strict=True))
    if cfg.faces_root is not None:
        assert cfg.face_boxes is not None, "natural faces need their box cache (face_boxes)"
        faces = load_faces(cfg.faces_root, cfg.face_boxes, cfg.seed)
        if cfg.max_train_images is not None and len(faces[0]) > cfg.max_train_images:
            faces = (random.Random(cfg.seed).sample(faces[0], cfg.max_train_images), *faces[1:])
        data |= dict(zip(("faces_train", "faces_val", "faces_test"), faces, strict=True))
    return data


def draw_weights(data: dict[str, list[Sample]], share: float) -> list[float]:
    """Per training sample (LFW first, then natural faces): its weight so the faces get ``share`` of draws."""
    lfw, faces = data["train"], data.get("faces_train", [])
    if not faces:
        return [1.0] * len(lfw)
    return [(1 - share) / len(lfw)] * len(lfw) + [share / len(faces)] * len(faces)


def class_weights(samples: list[Sample], power: float, draws: list[float] | None = None) -> torch.Tensor:
    """``(N / (C * n_c)) ** power`` per class: 1 gives each class equal total weight.

    With ``draws`` (a weight per sample, as the sampler draws them) the class shares are those drawn.
    """
    if draws is None:
        counts = torch.tensor(class_counts(samples), dtype=torch.float32).clamp(min=1)
    else:
        counts = torch.zeros(len(LABELS)).index_add_(0, torch.tensor([s.label for s in samples]), torch.tensor(draws))
        counts = counts.clamp(min=1e-9)
    return (counts.sum() / (len(counts) * counts)) ** power  # (C,)


def make_optimizer(network: nn.Module, cfg: TrainConfig, steps: int) -> tuple[Any, Any]:
    """AdamW without decay on norms and biases, under a one-cycle (warm-up then cosine) schedule.

    With an ``hours`` budget the schedule is a ``BudgetSchedule``: it decays over the steps or the budget,
    whichever ends first, and says when the run is done.
    """
    decay = [p for p in network.parameters() if p.ndim > 1]
    no_decay = [p for p in network.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.hours is not None:
        return optimizer, BudgetSchedule(optimizer, cfg.lr, steps, cfg.hours * 3600)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    return optimizer, scheduler


def memory_format(widths: Sequence[int]) -> torch.memory_format:
    """channels_last (faster convolutions on CPU), except for a network of 4 channels or fewer somewhere: torch
    2.14.1's CPU backward of a strided 1x1 channels_last convolution that narrow aborts the process on AVX2-only
    machines (a shortcut projection of ``FaceNet``)."""
    return torch.channels_last if min(widths) > 4 else torch.contiguous_format


def train_one_epoch(
    network: nn.Module,
    loader: DataLoader[Any],
    loss_fn: nn.Module,
    optimizer: Any,
    scheduler: Any,
    progress: Progress,
    bf16: bool = False,
    memory: torch.memory_format = torch.channels_last,
) -> float:
    """One pass over ``loader`` (the scheduler steps per batch; a spent budget ends it early); mean loss."""
    network.train()
    task = progress.add_task("train", total=len(loader))
    total, steps = 0.0, 0
    for images, labels in loader:
        images = images.to(memory_format=memory)  # (B, 3, S, S), the network's layout
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = network(images)  # (B, C), bfloat16 under autocast
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total, steps = total + loss.item(), steps + 1
        progress.update(task, advance=1, description=f"train loss {loss.item():.3f}")
        if getattr(scheduler, "done", False):
            break
    progress.remove_task(task)
    return total / max(steps, 1)


def progress_bar(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, disable=not enabled, transient=True)


def validate(network: nn.Module, samples: list[Sample], cfg: TrainConfig, temperature: float = 1.0) -> dict[str, Any]:
    transform = eval_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD)
    probabilities = predict_probabilities(
        network, samples, transform, flip=cfg.flip_tta, temperature=temperature, crop_margin=cfg.crop_margin
    )
    return classification_metrics([s.label for s in samples], probabilities, LABELS)


def validate_all(network: nn.Module, data: dict[str, list[Sample]], cfg: TrainConfig) -> dict[str, Any]:
    """LFW validation metrics; with natural faces, selection by the mean of both balanced accuracies."""
    val = validate(network, data["val"], cfg)
    if not data.get("faces_val"):
        return val
    faces = validate(network, data["faces_val"], cfg)
    extra = {"lfw_val_balanced_accuracy": val["balanced_accuracy"], "faces_val_accuracy": faces["accuracy"]}
    extra["faces_val_balanced_accuracy"] = faces["balanced_accuracy"]
    mean = (val["balanced_accuracy"] + faces["balanced_accuracy"]) / 2
    auc = (val.get("roc_auc", 0.5) + faces.get("roc_auc", 0.5)) / 2
    return {**val, "balanced_accuracy": mean, "roc_auc": auc, "extra": extra}


def fit(
    cfg: TrainConfig,
    network: nn.Module,
    data: dict[str, list[Sample]],
    state: TrainState,
    optimizer: Any,
    scheduler: Any,
    loader: DataLoader[Any],
) -> None:
    """Train the remaining epochs, keep the weights with the best validation score, checkpoint each epoch."""
    samples = data["train"] + data.get("faces_train", [])
    draws = draw_weights(data, cfg.faces_share) if data.get("faces_train") else None
    weights = class_weights(samples, cfg.class_weight_power, draws).to(next(network.parameters()).device)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    with progress_bar(cfg.progress) as progress:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            if getattr(scheduler, "done", False):
                break
            torch.manual_seed(cfg.seed * 1000 + epoch)  # per-epoch seeds: a resumed run sees the same batches
            if isinstance(loader.generator, torch.Generator):
                loader.generator.manual_seed(cfg.seed * 1000 + epoch)
            started = time.monotonic()
            memory = memory_format(cfg.widths)
            loss = train_one_epoch(network, loader, loss_fn, optimizer, scheduler, progress, cfg.bf16, memory)
            seconds = time.monotonic() - started
            val = validate_all(network, data, cfg)
            best = state.record(epoch, loss, val, network, val.get("extra"))
            log.info(
                "epoch %d/%d loss %.4f val acc %.4f bal %.4f %s(%.0f s train)%s",
                epoch,
                cfg.epochs,
                loss,
                val["accuracy"],
                val["balanced_accuracy"],
                "".join(f"{k} {v:.4f} " for k, v in val.get("extra", {}).items()),
                seconds,
                " (best)" if best else "",
            )
            save_checkpoint(cfg.checkpoint_path, cfg.recipe(), state, network, optimizer, scheduler)


def make_loader(samples: list[Sample], cfg: TrainConfig, draws: list[float] | None = None) -> DataLoader[Any]:
    """Shuffled batches; with ``draws`` (a weight per sample) an epoch draws ``len(samples)`` by weight."""
    dataset = FaceDataset(
        samples,
        train_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD),
        box_crop=jittered_crop(cfg.crop_margin),
        boxed_transform=boxed_train_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD),
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = None if draws is None else WeightedRandomSampler(draws, len(samples), generator=generator)
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(samples) > cfg.batch_size,  # no batch of one for BatchNorm, but keep tiny sets trainable
        num_workers=cfg.workers,
        generator=generator,
        persistent_workers=cfg.workers > 0,
    )


def warm_start(cfg: TrainConfig) -> tuple[TrainConfig, dict[str, torch.Tensor] | None]:
    """With ``cfg.base``: the recipe takes the base's widths and input size; its float32 weights to start from."""
    if cfg.base is None:
        return cfg, None
    manifest = load_artifact(cfg.base)
    assert manifest.input is not None, f"{cfg.base} has no input spec"
    base = FaceClassifier.from_artifact(cfg.base, manifest, torch.device("cpu"))
    widths = tuple(int(w) for w in manifest.hyperparameters["widths"])
    cfg = dataclasses.replace(cfg, widths=widths, input_size=manifest.input.size)
    return cfg, base.network.state_dict()


def train_classifier(cfg: TrainConfig) -> Manifest:
    """Train (or resume), pick the best validation epoch, test it, and write the artifact to ``cfg.out_dir``."""
    assert cfg.epochs >= 1 and cfg.batch_size >= 2, f"need epochs >= 1 and batch_size >= 2, got {cfg}"
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    cfg, base_state = warm_start(cfg)
    data = load_all_splits(cfg)
    for name, samples in data.items():
        log.info("images %s: %s (female, male)", name, class_counts(samples))
    device = resolve_device(cfg.device)
    network = FaceNet(cfg.widths, len(LABELS), cfg.dropout)
    if base_state is not None:
        network.load_state_dict(base_state)
    network = network.to(device).to(memory_format=memory_format(cfg.widths))
    draws = draw_weights(data, cfg.faces_share) if data.get("faces_train") else None
    loader = make_loader(data["train"] + data.get("faces_train", []), cfg, draws)
    optimizer, scheduler = make_optimizer(network, cfg, cfg.epochs * len(loader))
    state = load_checkpoint(cfg.checkpoint_path, cfg.recipe(), network, optimizer, scheduler)
    fit(cfg, network, data, state, optimizer, scheduler, loader)
    network.load_state_dict(state.best_state)
    return write_classifier_artifact(cfg, network, state, data)


OUTPUT_FILES = {
    WEIGHTS_FILE,
    "manifest.json",
    CARD_NAME,
    CONFUSION_PNG,
    ROC_PNG,
    report.SLICES_PNG,
    report.RELIABILITY_PNG,
}


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; clear a previous artifact of ours, refuse to mix with anything else."""
    out_dir.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in out_dir.iterdir() if p.name not in OUTPUT_FILES]
    if strangers:
        raise FileExistsError(f"{out_dir} holds files that are not a classifier artifact: {sorted(strangers)}")
    for path in out_dir.iterdir():
        path.unlink()


def write_classifier_artifact(
    cfg: TrainConfig, network: nn.Module, state: TrainState, data: dict[str, list[Sample]]
) -> Manifest:
    """Save float16 weights; as they will be served, fit the temperature on the validation split, test every
    slice once, pack the manifest and write the model card."""
    prepare_out_dir(cfg.out_dir)
    save_state(network, cfg.out_dir / WEIGHTS_FILE, half=True)
    stored = load_file(str(cfg.out_dir / WEIGHTS_FILE))
    network.load_state_dict(
        {key: value.float() if value.is_floating_point() else value for key, value in stored.items()}
    )
    transform = eval_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD)
    val = data["val"] + data.get("faces_val", [])
    calibration = report.calibration_report(network, val, transform, cfg.flip_tta, cfg.crop_margin)
    tests = {"lfw": data["test"], **slices(data.get("faces_test", []))}
    results = report.slice_metrics(network, tests, transform, cfg.flip_tta, calibration["temperature"], cfg.crop_margin)
    train = data["train"] + data.get("faces_train", [])
    draws = draw_weights(data, cfg.faces_share) if data.get("faces_train") else None
    hyper = training_hyperparameters(cfg, train, state, draws) | {"temperature": calibration["temperature"]}
    result = {**results["lfw"], "split": "test"}
    metrics = manifest_metrics(result, state, len(train), len(val)) | report.flat_metrics(results, calibration)
    manifest = pack_artifact(
        cfg.out_dir,
        name=cfg.name,
        version=cfg.version or cfg.out_dir.name,
        task="classify",
        architecture=ARCHITECTURE,
        hyperparameters=hyper,
        input=InputSpec(size=cfg.input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        labels=list(LABELS),
        metrics=metrics,
        provenance=Provenance(
            method=training_method(cfg, state), data=data_recipe(cfg), command=cfg.command, commit=git_commit()
        ),
    )
    write_model_card(cfg.out_dir, result, manifest, report.card_sections(cfg.out_dir, results, calibration))
    return repack_artifact(cfg.out_dir)  # the card and its plots are listed and hashed too, so they travel


def training_method(cfg: TrainConfig, state: TrainState) -> str:
    start = f"warm-started from {cfg.base.name} ({cfg.base})" if cfg.base else "from scratch"
    budget = f", budget {cfg.hours} h" if cfg.hours else ""
    bf16 = ", bfloat16 autocast" if cfg.bf16 else ""
    selection = "mean of LFW and natural-face validation" if cfg.faces_root else "validation"
    return (
        f"trained: FaceNet {start}, up to {cfg.epochs} epochs{budget}{bf16}, epoch {state.best_epoch} chosen by "
        f"{selection} balanced accuracy; temperature scaling fitted on the validation split"
    )


def data_recipe(cfg: TrainConfig) -> str:
    """Where the data came from and how it was split, with paths relative to the data roots."""
    lfw = (
        f"LFW3D with LFW gender lists ({cfg.data_root.name}); people in both lists dropped; identity-disjoint "
        f"split {list(cfg.split_fractions)} stratified by gender, seed {cfg.seed}"
    )
    if cfg.faces_root is None or cfg.face_boxes is None:
        return lfw
    return (
        f"{lfw}. Natural faces ({cfg.faces_root.name}: crops/ used whole, portraits/ cropped around the face "
        f"box of the teacher detector Ultra-Light RFB-640 with the served margin {cfg.crop_margin}; portraits "
        f"without a face at score >= 0.7 left out), box cache {cfg.face_boxes.name} sha256 "
        f"{file_sha256(cfg.face_boxes)[:16]}; split {list(FACES_SPLIT)} stratified by subset and gender, "
        f"near-duplicate pictures (difference hash within 4 bits) kept in one split, seed {cfg.seed}; "
        f"{cfg.faces_share:.0%} of each epoch's draws"
    )


def training_hyperparameters(
    cfg: TrainConfig, train: list[Sample], state: TrainState, draws: list[float] | None = None
) -> dict[str, Any]:
    schedule = "OneCycleLR (15% warm-up, cosine)"
    if cfg.hours is not None:
        schedule = "5% warm-up, cosine to 2% over the steps or the hours budget, whichever ends first"
    return {
        **cfg.recipe(),
        "optimizer": "AdamW (no decay on norms and biases)",
        "schedule": schedule,
        "loss": "class-weighted cross-entropy",
        "class_weights": class_weights(train, cfg.class_weight_power, draws).tolist(),
        "augmentation": AUGMENTATION,
        "selected_epoch": state.best_epoch,
        "history": state.history,
    }


def manifest_metrics(result: dict[str, Any], state: TrainState, n_train: int, n_val: int) -> dict[str, float]:
    keys = ["accuracy", "balanced_accuracy", *(f"recall_{label}" for label in LABELS), "roc_auc"]
    metrics = {key: float(result[key]) for key in keys if key in result}
    metrics.update(n_train=n_train, n_val=n_val, n_test=result["n"], val_balanced_accuracy=state.best_score[0])
    return metrics


def main(
    data_root: Path,
    out_dir: Path,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    input_size: int = 64,
    widths: str = "32,64,128,256",
    seed: int = 0,
    threads: int = 1,
    max_train_images: int | None = None,
    class_weight_power: float = 0.5,
    flip_tta: bool = False,
    checkpoint: Path | None = None,
    version: str | None = None,
    progress: bool = True,
    faces_root: Path | None = None,
    face_boxes: Path | None = None,
    faces_share: float = 0.4,
    base: Path | None = None,
    hours: float | None = None,
    bf16: bool = False,
) -> None:
    """Train the face gender classifier and write its artifact to OUT_DIR.

    --faces-root adds the natural faces (with their --face-boxes cache from `deepcanvas data classifier-boxes`),
    --base warm-starts from an artifact folder, --hours bounds the wall-clock time, --bf16 uses CPU autocast.
    """
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    cfg = TrainConfig(
        data_root=data_root,
        out_dir=out_dir,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        input_size=input_size,
        widths=tuple(int(w) for w in widths.split(",")),
        seed=seed,
        threads=threads,
        max_train_images=max_train_images,
        class_weight_power=class_weight_power,
        flip_tta=flip_tta,
        checkpoint=checkpoint,
        version=version,
        progress=progress,
        command=invoked_command(),
        faces_root=faces_root,
        face_boxes=face_boxes,
        faces_share=faces_share,
        base=base,
        hours=hours,
        bf16=bf16,
    )
    manifest = train_classifier(cfg)
    log.info("wrote %s: %s", out_dir, manifest.metrics)


if __name__ == "__main__":
    typer.run(main)
