"""Train FaceNet on LFW gender with an identity-disjoint split, and pack the chosen weights as an artifact.

Class-weighted cross-entropy for the ~3.5:1 imbalance, AdamW with a one-cycle schedule, the epoch
chosen by validation balanced accuracy, the chosen weights evaluated once on the test split. A
checkpoint written after every epoch makes an interrupted run resume where it stopped.

    python -m models.classifier.train DATA_ROOT OUT_DIR --epochs 20 --threads 1
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader

from models.artifact import InputSpec, Manifest, Provenance, pack_artifact
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
from models.classifier.network import FaceNet
from models.classifier.predictor import ARCHITECTURE, WEIGHTS_FILE
from models.classifier.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform
from models.predictor import resolve_device, save_state
from models.provenance import git_commit, invoked_command

log = logging.getLogger("deepcanvas.classifier.train")

AUGMENTATION = "detector-like crop (reflect pad, zoom 0.75-1.2, shift 6%, rotate 8 deg), flip, jitter, gray, blur"


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

    def recipe(self) -> dict[str, Any]:
        """The fields that change the result; a checkpoint only resumes a run with the same recipe."""
        skip = {"data_root", "out_dir", "threads", "workers", "checkpoint", "name", "version", "device"}
        skip |= {"progress", "command"}
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items() if k not in skip}

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


def class_weights(samples: list[Sample], power: float) -> torch.Tensor:
    """``(N / (C * n_c)) ** power`` per class: 1 gives each class equal total weight."""
    counts = torch.tensor(class_counts(samples), dtype=torch.float32).clamp(min=1)
    return (counts.sum() / (len(counts) * counts)) ** power  # (C,)


def make_optimizer(network: nn.Module, cfg: TrainConfig, steps: int) -> tuple[Any, Any]:
    """AdamW without decay on norms and biases, under a one-cycle (warm-up then cosine) schedule."""
    decay = [p for p in network.parameters() if p.ndim > 1]
    no_decay = [p for p in network.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    return optimizer, scheduler


def train_one_epoch(
    network: nn.Module, loader: DataLoader[Any], loss_fn: nn.Module, optimizer: Any, scheduler: Any, progress: Progress
) -> float:
    """One pass over ``loader`` (the scheduler steps per batch); returns the mean training loss."""
    network.train()
    task = progress.add_task("train", total=len(loader))
    total = 0.0
    for images, labels in loader:
        images = images.to(memory_format=torch.channels_last)  # (B, 3, S, S), faster convs on CPU
        loss = loss_fn(network(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item()
        progress.update(task, advance=1, description=f"train loss {loss.item():.3f}")
    progress.remove_task(task)
    return total / max(len(loader), 1)


def progress_bar(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, disable=not enabled, transient=True)


def validate(network: nn.Module, samples: list[Sample], cfg: TrainConfig) -> dict[str, Any]:
    transform = eval_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD)
    probabilities = predict_probabilities(network, samples, transform, flip=cfg.flip_tta)
    return classification_metrics([s.label for s in samples], probabilities, LABELS)


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
    weights = class_weights(data["train"], cfg.class_weight_power).to(next(network.parameters()).device)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
    with progress_bar(cfg.progress) as progress:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            torch.manual_seed(cfg.seed * 1000 + epoch)  # per-epoch seeds: a resumed run sees the same batches
            if isinstance(loader.generator, torch.Generator):
                loader.generator.manual_seed(cfg.seed * 1000 + epoch)
            loss = train_one_epoch(network, loader, loss_fn, optimizer, scheduler, progress)
            val = validate(network, data["val"], cfg)
            best = state.record(epoch, loss, val, network)
            log.info(
                "epoch %d/%d loss %.4f val acc %.4f bal %.4f%s",
                epoch,
                cfg.epochs,
                loss,
                val["accuracy"],
                val["balanced_accuracy"],
                " (best)" if best else "",
            )
            save_checkpoint(cfg.checkpoint_path, cfg.recipe(), state, network, optimizer, scheduler)


def make_loader(samples: list[Sample], cfg: TrainConfig) -> DataLoader[Any]:
    dataset = FaceDataset(samples, train_transform(cfg.input_size, IMAGENET_MEAN, IMAGENET_STD))
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(samples) > cfg.batch_size,  # no batch of one for BatchNorm, but keep tiny sets trainable
        num_workers=cfg.workers,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=cfg.workers > 0,
    )


def train_classifier(cfg: TrainConfig) -> Manifest:
    """Train (or resume), pick the best validation epoch, test it, and write the artifact to ``cfg.out_dir``."""
    assert cfg.epochs >= 1 and cfg.batch_size >= 2, f"need epochs >= 1 and batch_size >= 2, got {cfg}"
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    train, val, test = load_splits(cfg)
    log.info("images: train %s, val %s, test %s (female, male)", *(class_counts(s) for s in (train, val, test)))
    device = resolve_device(cfg.device)
    network = FaceNet(cfg.widths, len(LABELS), cfg.dropout).to(device).to(memory_format=torch.channels_last)
    loader = make_loader(train, cfg)
    optimizer, scheduler = make_optimizer(network, cfg, cfg.epochs * len(loader))
    state = load_checkpoint(cfg.checkpoint_path, cfg.recipe(), network, optimizer, scheduler)
    fit(cfg, network, {"train": train, "val": val}, state, optimizer, scheduler, loader)
    network.load_state_dict(state.best_state)
    return write_classifier_artifact(cfg, network, state, (train, val, test))


OUTPUT_FILES = {WEIGHTS_FILE, "manifest.json", CARD_NAME, CONFUSION_PNG, ROC_PNG}


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; clear a previous artifact of ours, refuse to mix with anything else."""
    out_dir.mkdir(parents=True, exist_ok=True)
    strangers = [p.name for p in out_dir.iterdir() if p.name not in OUTPUT_FILES]
    if strangers:
        raise FileExistsError(f"{out_dir} holds files that are not a classifier artifact: {sorted(strangers)}")
    for path in out_dir.iterdir():
        path.unlink()


def write_classifier_artifact(
    cfg: TrainConfig, network: nn.Module, state: TrainState, splits: tuple[list[Sample], ...]
) -> Manifest:
    """Save float16 weights, test them as they will be served, pack the manifest, write the model card."""
    prepare_out_dir(cfg.out_dir)
    save_state(network, cfg.out_dir / WEIGHTS_FILE, half=True)
    stored = load_file(str(cfg.out_dir / WEIGHTS_FILE))
    network.load_state_dict(
        {key: value.float() if value.is_floating_point() else value for key, value in stored.items()}
    )
    train, val, test = splits
    result = {**validate(network, test, cfg), "split": "test"}
    manifest = pack_artifact(
        cfg.out_dir,
        name=cfg.name,
        version=cfg.version or cfg.out_dir.name,
        task="classify",
        architecture=ARCHITECTURE,
        hyperparameters=training_hyperparameters(cfg, train, state),
        input=InputSpec(size=cfg.input_size, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        labels=list(LABELS),
        metrics=manifest_metrics(result, state, len(train), len(val)),
        provenance=Provenance(
            method=f"trained: FaceNet from scratch, {cfg.epochs} epochs, epoch {state.best_epoch} chosen by "
            "validation balanced accuracy",
            data=f"LFW3D with LFW gender lists ({cfg.data_root}); people in both lists dropped; identity-disjoint "
            f"split {list(cfg.split_fractions)} stratified by gender, seed {cfg.seed}",
            command=cfg.command,
            commit=git_commit(),
        ),
    )
    write_model_card(cfg.out_dir, result, manifest)  # after packing: the card is documentation, not a weight
    return manifest


def training_hyperparameters(cfg: TrainConfig, train: list[Sample], state: TrainState) -> dict[str, Any]:
    return {
        **cfg.recipe(),
        "optimizer": "AdamW (no decay on norms and biases)",
        "schedule": "OneCycleLR (15% warm-up, cosine)",
        "loss": "class-weighted cross-entropy",
        "class_weights": class_weights(train, cfg.class_weight_power).tolist(),
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
) -> None:
    """Train the face gender classifier and write its artifact to OUT_DIR."""
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
    )
    manifest = train_classifier(cfg)
    log.info("wrote %s: %s", out_dir, manifest.metrics)


if __name__ == "__main__":
    typer.run(main)
