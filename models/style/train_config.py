"""The recipe of an AdaIN training run: what ``train.py`` trains and ``packing.py`` records in the artifact.

Its own module so that the training loop and the artifact writer both import it and not each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.artifact import load_artifact, sha256_file
from models.style.split import DEFAULT_RULE, HELD_OUT_RULES
from models.style.types import DECODER_FILE


def held_out_rule(base: Path | None, asked: str | None) -> str:
    """The held-out rule a run trains under: ``asked``, else its base's. A base trained on the corpus under one rule
    cannot start a run under another: its weights have seen images the other holds out (or the run would train on
    images the base's evaluation held out). An imported base (no lineage) saw none of the corpus."""
    base_rule = None
    if base is not None:
        hyperparameters = load_artifact(base).hyperparameters
        if hyperparameters.get("lineage"):
            base_rule = str(hyperparameters.get("held_out", DEFAULT_RULE))
    rule = asked or base_rule or DEFAULT_RULE
    if rule not in HELD_OUT_RULES:
        raise ValueError(f"the held-out rule is one of {', '.join(HELD_OUT_RULES)}, not {rule!r}")
    if base_rule is not None and rule != base_rule:
        raise ValueError(
            f"the base was trained under held-out rule {base_rule}: a run under {rule} would start from weights "
            f"that saw images {rule} holds out, or train on images {base_rule} held out; train under {base_rule}"
        )
    return rule


class Objective(StrEnum):
    paper = "paper"
    measures = "measures"


@dataclass
class StyleTrainConfig:
    content_dir: Path
    style_dir: Path
    loss_network: Path
    out_dir: Path
    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    iterations: int = 160_000  # the paper's schedule at batch 8
    batch_size: int = 8
    crop: int = 256
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr / (1 + decay * iteration), as the AdaIN release
    style_weight: float = 1.0  # λ: train.py's docstring says why not the paper's 10
    style_layer_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # relu1_1 … relu4_1 in the sum
    content_weight: float = 1.0
    # "paper": content loss to the AdaIN target t, losses summed over the batch (Huang & Belongie);
    # "measures": the mean over pairs of log style loss and log content loss *to the photo*, as evaluation
    # measures them, so each pair counts by its relative change, as the card's median ratios do
    objective: str = Objective.paper
    manner: float = 0.0  # decoder-side matching (models.style.matching) at this strength in the training forward
    # > 0: keep an exponential moving average of the decoder's weights at this decay per step, and write it as the
    # artifact: batch-8 steps on a CPU are noisy enough that single iterates wander around the optimum
    ema: float = 0.0
    distill_weight: float = 1.0
    pixel_weight: float = 10.0
    self_pairs: int = 1
    held_out: str = "v1"  # split.py's rule for the photos and paintings kept out of training
    faces_dir: Path | None = None  # small face crops (LFW3D), upsampled, mixed into the contents
    face_fraction: float = 0.25
    style_jitter: float = 0.0  # the share of style crops given another palette (train.jittered_palette)
    seed: int = 0
    threads: int = 1
    workers: int = 0
    checkpoint_every: int = 500
    checkpoint: Path | None = None  # default: OUT_DIR.parent / "OUT_DIR-name.checkpoint.pt"
    time_limit_s: float | None = None  # stop (checkpointed) after this long and write the artifact so far
    base: Path | None = None  # an AdaIN artifact: its encoder (frozen) and decoder (trained on) start the run
    bf16: bool = False  # bfloat16 autocast for the networks; weights and losses stay float32
    warmup: int = 0  # linear learning-rate warm-up over this many steps
    eval_size: int = 256
    device: str = "cpu"
    name: str = "adain"
    version: str | None = None  # default: OUT_DIR's name
    progress: bool = True
    command: str | None = None
    evaluate: bool = True  # evaluate on the reported held-out pairs and write the card (off for sweeps)
    figures: Path | None = None  # the card's pictures of ../shared's images; default runs/figures/<name>-<version>

    def __post_init__(self) -> None:
        self.objective = Objective(self.objective).value  # refuses a name that is no objective
        if not 0.0 <= self.manner <= 1.0:
            raise ValueError(f"manner is a strength in [0, 1], got {self.manner}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema is a decay in [0, 1), got {self.ema}")
        if not 0.0 <= self.style_jitter <= 1.0:
            raise ValueError(f"style_jitter is a share in [0, 1], got {self.style_jitter}")
        if self.held_out not in HELD_OUT_RULES:
            raise ValueError(f"held_out is one of {', '.join(HELD_OUT_RULES)}, got {self.held_out!r}")

    def recipe(self) -> dict[str, Any]:
        """The fields that change the result; a checkpoint only resumes a run with the same recipe."""
        keep = {"widths", "batch_size", "crop", "lr", "lr_decay", "style_weight", "content_weight", "seed"}
        keep |= {"distill_weight", "pixel_weight", "self_pairs", "face_fraction", "bf16", "warmup"}
        keep |= {"style_layer_weights"}
        if self.objective != Objective.paper:  # older checkpoints and manifests have no objective: they are "paper"
            keep |= {"objective"}
        if self.manner:  # nor a manner: theirs is 0
            keep |= {"manner"}
        if self.ema:  # nor an average
            keep |= {"ema"}
        if self.style_jitter:  # nor a palette jitter
            keep |= {"style_jitter"}
        if self.held_out != DEFAULT_RULE:  # nor a held-out rule: theirs is v1
            keep |= {"held_out"}
        recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items() if k in keep}
        if self.base is not None:  # the base's weights, not its path, make the result
            recipe["base_sha256"] = sha256_file(self.base / DECODER_FILE)
        return recipe

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint or self.out_dir.parent / f"{self.out_dir.name}.checkpoint.pt"
