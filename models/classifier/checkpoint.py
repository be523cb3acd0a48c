"""Resumable training: the run's state, saved after every epoch and restored on the next start."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger("deepcanvas.classifier.train")


@dataclass
class TrainState:
    """Everything a resumed run needs besides the modules (tensors and plain values, for ``weights_only``)."""

    epoch: int = 0  # epochs completed
    best_score: tuple[float, float] = (-1.0, -1.0)  # (val balanced accuracy, val ROC AUC)
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)

    def record(
        self, epoch: int, loss: float, val: dict[str, Any], network: nn.Module, extra: dict[str, float] | None = None
    ) -> bool:
        """Log an epoch's validation metrics; keep the weights when they are the best yet (returns whether)."""
        score = (float(val["balanced_accuracy"]), float(val.get("roc_auc", 0.5)))
        self.epoch = epoch
        self.history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_accuracy": val["accuracy"],
                "val_balanced_accuracy": score[0],
                "val_roc_auc": score[1],
                **{key: float(value) for key, value in (extra or {}).items()},
            }
        )
        if score <= self.best_score:
            return False
        self.best_score, self.best_epoch = score, epoch
        self.best_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
        return True


def save_checkpoint(
    path: Path, recipe: dict[str, Any], state: TrainState, network: nn.Module, optimizer: Any, scheduler: Any
) -> None:
    """Write atomically (temp file, then rename), so a run killed mid-write keeps the previous checkpoint."""
    payload = {
        "recipe": recipe,
        "state": dataclasses.asdict(state),
        "network": network.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def load_checkpoint(
    path: Path, recipe: dict[str, Any], network: nn.Module, optimizer: Any, scheduler: Any
) -> TrainState:
    """Restore a run from ``path`` into the modules; a fresh state when there is none.

    Refuses a checkpoint made with another recipe: resuming it would silently train a different model.
    """
    if not path.is_file():
        return TrainState()
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["recipe"] != recipe:
        raise ValueError(f"checkpoint {path} was made with another recipe; delete it or restore the config")
    network.load_state_dict(payload["network"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    state = TrainState(**payload["state"])
    state.best_score = (float(state.best_score[0]), float(state.best_score[1]))
    log.info("resuming from %s after epoch %d", path, state.epoch)
    return state
