"""Write a trained AdaIN artifact: weights, the base's licence, evaluation metrics and the model card, all hashed.

The card's pictures show ../shared's images and are drawn into a figures folder outside the artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from models.artifact import MANIFEST_NAME, InputSpec, Manifest, Provenance, load_artifact, pack_artifact
from models.figures import figures_folder
from models.predictor import save_state
from models.provenance import git_commit, portable_path
from models.style.evaluate import evaluation_images, write_evaluation
from models.style.network import Decoder, VGGEncoder
from models.style.nst_network import NST_NETWORK_FILE
from models.style.predictor import ARCHITECTURE, DECODER_FILE, ENCODER_FILE
from models.style.split import DEFAULT_RULE, HELD_OUT_TEXT
from models.style.starter import style_hyperparameters
from models.style.train_config import Objective, StyleTrainConfig

CARD_NAME = "MODEL_CARD.md"
WEIGHT_FILES = frozenset({ENCODER_FILE, DECODER_FILE})
# the NST loss network (nst_network.py) is not trained here: a trained version inherits it from its base
_OWN_FILES = WEIGHT_FILES | {MANIFEST_NAME, CARD_NAME}


def _is_artifact_file(name: str) -> bool:
    return name in _OWN_FILES or name in ("LICENSE", NST_NETWORK_FILE) or name.endswith((".png", ".jpg", ".onnx"))


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``; clear a previous AdaIN artifact, refuse to mix with anything else."""
    out_dir.mkdir(parents=True, exist_ok=True)
    strangers = sorted(p.name for p in out_dir.iterdir() if not _is_artifact_file(p.name))
    if strangers:
        raise FileExistsError(f"{out_dir} holds files that are not an AdaIN artifact: {strangers}")
    for path in out_dir.iterdir():
        path.unlink()


def inherited_files(base: Path) -> list[Path]:
    """The files a trained artifact carries over from its base: licences, not weights, cards or pictures."""
    manifest = load_artifact(base)
    names = [entry.path for entry in manifest.files]
    return [base / name for name in names if name not in _OWN_FILES and not name.endswith((".png", ".jpg", ".onnx"))]


def lineage(cfg: StyleTrainConfig, done: int) -> list[dict[str, Any]]:
    """The chain of runs that made these weights: the base's chain, then this run."""
    chain: list[dict[str, Any]] = []
    base_name = None
    if cfg.base is not None:
        base = load_artifact(cfg.base)
        chain = list(base.hyperparameters.get("lineage", []))
        base_name = f"{base.name}/{base.version}"
    run: dict[str, Any] = {"base": base_name, "iterations": done, "crop": cfg.crop, "batch_size": cfg.batch_size}
    run |= {"style_weight": cfg.style_weight, "lr": cfg.lr, "bf16": cfg.bf16, "device": cfg.device}
    run |= {"objective": cfg.objective} if cfg.objective != Objective.paper else {}
    run |= {"manner": cfg.manner} if cfg.manner else {}
    run |= {"held_out": cfg.held_out} if cfg.held_out != DEFAULT_RULE else {}
    return [*chain, run]


def write_trained_artifact(
    cfg: StyleTrainConfig, encoder: VGGEncoder, decoder: Decoder, done: int, history: list[dict[str, float]]
) -> Manifest:
    """Pack float16 weights, evaluate them as served on held-out pairs, write the card, re-pack with metrics."""
    prepare_out_dir(cfg.out_dir)
    save_state(encoder, cfg.out_dir / ENCODER_FILE)
    save_state(decoder, cfg.out_dir / DECODER_FILE)
    for path in inherited_files(cfg.base) if cfg.base is not None else []:
        shutil.copyfile(path, cfg.out_dir / path.name)
    contents, styles = evaluation_images(cfg.content_dir, cfg.style_dir, rule=cfg.held_out)
    hyperparameters = style_hyperparameters(cfg.widths) | cfg.recipe() | {"iterations_done": done}
    hyperparameters |= {"evaluated_on": [p.name for p in contents + styles], "history": history}
    hyperparameters |= {"lineage": lineage(cfg, done), "frozen_encoder": cfg.base is not None}
    if cfg.base is not None and "nst_network" in load_artifact(cfg.base).hyperparameters:
        hyperparameters["nst_network"] = load_artifact(cfg.base).hyperparameters["nst_network"]
    fields: dict[str, Any] = {
        "name": cfg.name,
        "version": cfg.version or cfg.out_dir.name,
        "task": "stylize",
        "architecture": ARCHITECTURE,
        "hyperparameters": hyperparameters,
        "input": InputSpec(size=cfg.crop),
        "defaults": {"alpha": 1.0},
        "provenance": _training_provenance(cfg, done),
    }
    manifest = pack_artifact(cfg.out_dir, **fields)
    if not cfg.evaluate or not contents or not styles:  # asked not to, or nothing was held out to evaluate on
        return manifest
    metrics = write_evaluation(
        cfg.out_dir,
        manifest,
        cfg.loss_network,
        contents,
        styles,
        cfg.eval_size,
        baseline=cfg.base,
        device=torch.device(cfg.device),
        figures=cfg.figures or figures_folder(manifest.name, manifest.version),
    )
    return pack_artifact(cfg.out_dir, **fields, metrics=metrics)  # the card is hashed too; its pictures are not here


def _training_provenance(cfg: StyleTrainConfig, done: int) -> Provenance:
    faces = f" and faces ({portable_path(cfg.faces_dir)}, {cfg.face_fraction:.0%})" if cfg.faces_dir else ""
    if cfg.base is not None:
        base = load_artifact(cfg.base)
        what = f"AdaIN decoder from {base.name}/{base.version} ({base.provenance.method}); its encoder frozen"
    else:
        what = "AdaIN encoder and decoder from scratch"
    precision = "bf16 autocast" if cfg.bf16 else "float32"
    objective = "" if cfg.objective == Objective.paper else f", the {cfg.objective} objective"
    objective += f", decoder-side matching at manner {cfg.manner}" if cfg.manner else ""
    objective += f", {cfg.style_jitter:.0%} of styles in a jittered palette" if cfg.style_jitter else ""
    return Provenance(
        method=f"trained: {what}; {done}/{cfg.iterations} iterations of batch {cfg.batch_size} at {cfg.crop} px, "
        f"style weight {cfg.style_weight}{objective}, {precision} on {cfg.device}; losses from {cfg.loss_network.name}",
        data=f"contents {portable_path(cfg.content_dir)}{faces}; styles {portable_path(cfg.style_dir)}; "
        f"held out by models/style/split.py's rule {cfg.held_out} ({HELD_OUT_TEXT[cfg.held_out]})",
        command=cfg.command,
        commit=git_commit(),
    )
