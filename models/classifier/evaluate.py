"""Evaluate a classifier artifact on an LFW split and write its model card (Markdown + PNG plots)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader

from models.artifact import Manifest, load_artifact, repack_artifact, write_manifest
from models.classifier import metrics as M
from models.classifier.calibration import view_probabilities
from models.classifier.data import FaceDataset, Sample, scan_lfw, served_crop, split_by_identity
from models.classifier.pipeline import flip_tta, temperature
from models.classifier.predictor import FaceClassifier
from models.classifier.transforms import Transform
from models.classifier.types import DEFAULT_CROP_MARGIN

SPLITS = ("train", "val", "test")
CARD_NAME = "MODEL_CARD.md"
CONFUSION_PNG = "confusion_matrix.png"
ROC_PNG = "roc_curve.png"
RESPONSIBLE_USE = [
    "## What the label means, and what it must not be used for",
    "",
    "- The label is the gender a face *appears to present* in one photo, in the two classes of the training",
    "  data (`female`, `male`, as published for LFW and by the natural-face collection's folders). It is",
    "  not a person's gender identity, sex or any other fact about them, and it says nothing about people",
    "  who present otherwise. The `score` is the model's probability for that label, not a certainty.",
    "- Do not use it to make or support decisions about people (access, hiring, policing, benefits, pricing,",
    "  safety), to verify or infer identity, or to track or profile anyone. Use it for aggregate, non-",
    "  consequential purposes such as photo organisation or dataset statistics, with `min_score` set so",
    "  unreliable answers come back as `unknown`.",
    "",
    "## Limitations",
    "",
    "- LFW is mostly adult, mostly light-skinned celebrities photographed by the press; the natural faces add",
    "  ages and ethnicities but are small (3,230 pictures), labelled by folder (a few labels are wrong) and",
    "  unlabelled for age and ethnicity, so accuracy per age band or ethnicity is not measured here.",
    "- Accuracy is lower on children, older people, profiles, heavy occlusion and very small or blurred faces.",
    "- Trained on frontalized LFW3D crops and detector-style crops; set `crop_margin` to match the detector.",
]
LIMITATIONS = RESPONSIBLE_USE


def predict_logits(
    network: torch.nn.Module,
    samples: Sequence[Sample],
    transform: Transform,
    batch_size: int = 128,
    flip: bool = False,
    crop_margin: float = DEFAULT_CROP_MARGIN,
) -> npt.NDArray[np.float32]:
    """Logits ``(N, V, C)`` for ``samples`` in order (V = 2 views with ``flip``: the image and its mirror).

    Boxed samples are cropped as ``/classify`` crops them (box grown by ``crop_margin``); ``network`` runs
    in eval mode.
    """
    device = next(network.parameters()).device
    dataset = FaceDataset(samples, transform, box_crop=served_crop(crop_margin))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    was_training = network.training
    network.eval()
    chunks = []
    with torch.inference_mode():
        for images, _ in loader:
            views = torch.stack([images, images.flip(-1)], dim=1) if flip else images[:, None]  # (B, V, 3, S, S)
            logits = network(views.flatten(0, 1).to(device)).float().cpu()  # (B*V, C)
            chunks.append(logits.unflatten(0, views.shape[:2]).numpy())  # (B, V, C)
    network.train(was_training)
    return np.concatenate(chunks)


def predict_probabilities(
    network: torch.nn.Module,
    samples: Sequence[Sample],
    transform: Transform,
    batch_size: int = 128,
    flip: bool = False,
    temperature: float = 1.0,
    crop_margin: float = DEFAULT_CROP_MARGIN,
) -> npt.NDArray[np.float64]:
    """Probabilities ``(N, num_classes)`` for ``samples``, in order, as the predictors serve them.

    With ``flip``, each is the mean of the image's and its mirror's probabilities; logits are divided by
    ``temperature`` first.
    """
    logits = predict_logits(network, samples, transform, batch_size, flip, crop_margin)
    return view_probabilities(logits, temperature).astype(np.float64)


def classification_metrics(
    y_true: npt.ArrayLike, probabilities: npt.NDArray[np.float64], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall, ROC AUC (binary: score of ``labels[1]``), confusion."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = probabilities.argmax(axis=1)
    recalls = M.recall_per_class(true, pred, len(labels))
    result: dict[str, Any] = {
        "n": int(true.size),
        "accuracy": M.accuracy(true, pred),
        "balanced_accuracy": M.balanced_accuracy(true, pred, len(labels)),
        **{f"recall_{label}": float(recall) for label, recall in zip(labels, recalls, strict=True)},
        "confusion_matrix": M.confusion_matrix(true, pred, len(labels)).tolist(),
    }
    if len(labels) == 2 and np.unique(true).size == 2:
        fpr, tpr, _ = M.roc_curve(true, probabilities[:, 1])
        result["roc_auc"] = M.roc_auc(true, probabilities[:, 1])
        result["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return result


def split_samples(manifest: Manifest, data_root: Path, split: str, seed: int) -> list[Sample]:
    """The same identity-disjoint split the training used (fractions recorded in the manifest)."""
    assert split in SPLITS, f"split must be one of {SPLITS}, got {split!r}"
    fractions = tuple(manifest.hyperparameters.get("split_fractions", (0.8, 0.1, 0.1)))
    parts = split_by_identity(scan_lfw(data_root), fractions=fractions, seed=seed)
    return parts[SPLITS.index(split)]


def evaluate_classifier(
    artifact_folder: Path, data_root: Path, split: str = "test", seed: int = 0, flip: bool | None = None
) -> dict[str, Any]:
    """Metrics of the artifact, as served (float16 weights, predictor preprocessing), on one split.

    ``flip`` overrides the manifest's flip test-time augmentation (None: as the manifest says).
    """
    manifest = load_artifact(artifact_folder)
    classifier = FaceClassifier.from_artifact(artifact_folder, manifest, torch.device("cpu"))
    samples = split_samples(manifest, data_root, split, seed)
    flip = flip_tta(manifest) if flip is None else flip
    probabilities = predict_probabilities(
        classifier.network, samples, classifier.transform, flip=flip, temperature=temperature(manifest)
    )
    result = classification_metrics([s.label for s in samples], probabilities, classifier.labels)
    return {"model": f"{manifest.name}/{manifest.version}", "split": split, "seed": seed, "flip_tta": flip, **result}


def record_flip_tta(artifact_folder: Path, data_root: Path, seed: int = 0) -> dict[str, Any]:
    """Turn flip test-time augmentation on for an artifact trained without it, if validation says it helps.

    The decision uses the validation split only (accuracy and balanced accuracy both no worse with flips);
    the test split is then measured once, as served, and becomes the manifest's metrics. The weights are
    untouched; the manifest is rewritten with the flag, both validation comparisons and the new metrics.
    """
    manifest = load_artifact(artifact_folder)
    if flip_tta(manifest):
        raise ValueError(f"{manifest.name}/{manifest.version} already serves with flip_tta")
    val = {flip: evaluate_classifier(artifact_folder, data_root, "val", seed, flip) for flip in (False, True)}
    keys = ("accuracy", "balanced_accuracy")
    comparison = {f"val_{key}_{'flip' if f else 'plain'}": float(val[f][key]) for f in (False, True) for key in keys}
    if any(val[True][key] < val[False][key] for key in keys):
        return {"recorded": False, **comparison}
    test = evaluate_classifier(artifact_folder, data_root, "test", seed, True)
    metrics = {key: float(test[key]) for key in (*keys, *(k for k in test if k.startswith("recall_")), "roc_auc")}
    hyper = manifest.hyperparameters | {"flip_tta": True, "flip_tta_validation": comparison}
    method = f"{manifest.provenance.method}; flip test-time augmentation added after training (validation split)"
    updated = manifest.model_copy(
        update={
            "hyperparameters": hyper,
            "metrics": manifest.metrics | metrics,
            "provenance": manifest.provenance.model_copy(update={"method": method}),
        }
    )
    write_manifest(artifact_folder, updated)
    write_model_card(artifact_folder, test, load_artifact(artifact_folder))
    repack_artifact(artifact_folder)  # the rewritten card is hashed again
    return {"recorded": True, **comparison, **metrics}


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    figure, axes = plt.subplots(figsize=(3.6, 3.2), dpi=120)
    axes.imshow(counts, cmap="Blues")
    for (row, col), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        axes.text(col, row, str(value), ha="center", va="center", color=colour)
    axes.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels)
    axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_roc_curve(fpr: Sequence[float], tpr: Sequence[float], auc: float, positive: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3.6, 3.4), dpi=120)
    axes.plot(fpr, tpr, label=f"AUC = {auc:.4f}")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axes.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC ({positive} positive)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_model_card(
    folder_or_path: Path, metrics: dict[str, Any], manifest: Manifest | None = None, extra: Sequence[str] = ()
) -> Path:
    """Write a Markdown model card (metrics table, confusion-matrix and ROC PNGs beside it); returns its path.

    ``extra`` lines (the per-slice and calibration sections) go before the responsible-use text.
    """
    path = folder_or_path / CARD_NAME if folder_or_path.is_dir() else folder_or_path
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = (
        manifest.labels if manifest else [key.removeprefix("recall_") for key in metrics if key.startswith("recall_")]
    )
    lines = _card_header(manifest, metrics) + _metrics_table(metrics)
    if "confusion_matrix" in metrics:
        plot_confusion_matrix(metrics["confusion_matrix"], labels, path.parent / CONFUSION_PNG)
        lines += ["", f"![confusion matrix]({CONFUSION_PNG})"]
    if "roc" in metrics:
        roc = metrics["roc"]
        plot_roc_curve(roc["fpr"], roc["tpr"], metrics["roc_auc"], labels[-1], path.parent / ROC_PNG)
        lines += ["", f"![ROC curve]({ROC_PNG})"]
    lines += [*extra, "", *RESPONSIBLE_USE]
    path.write_text("\n".join(lines) + "\n")
    return path


def _card_header(manifest: Manifest | None, metrics: dict[str, Any]) -> list[str]:
    title = f"{manifest.name} {manifest.version}" if manifest else metrics.get("model", "classifier")
    lines = [f"# Model card: {title}", ""]
    if manifest is not None:
        size = manifest.input.size if manifest.input else "?"
        recipe = {k: v for k, v in manifest.hyperparameters.items() if k != "history"}
        lines += [
            f"- Task: {manifest.task}; architecture: {manifest.architecture}; labels: {', '.join(manifest.labels)}",
            f"- Input: {size}x{size} RGB face crop; crop margin {manifest.hyperparameters.get('crop_margin')}",
            f"- Provenance: {manifest.provenance.method}",
            f"- Data: {manifest.provenance.data}",
            f"- Command: `{manifest.provenance.command}`; commit: {manifest.provenance.commit}",
            f"- Hyper-parameters: `{json.dumps(recipe, sort_keys=True)}`",
            *_history_table(manifest.hyperparameters.get("history", [])),
        ]
    split = metrics.get("split", "test")
    return [*lines, "", f"## Metrics ({split} split, identity-disjoint from training)", ""]


def _history_table(history: list[dict[str, float]]) -> list[str]:
    if not history:
        return []
    keys = list(history[0])
    rows = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    rows += ["| " + " | ".join(f"{row[k]:.4g}" for k in keys) + " |" for row in history]
    return ["", "## Training history (validation split)", "", *rows]


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    rows = ["| metric | value |", "|---|---|"]
    for key, value in metrics.items():
        if key == "seed":
            continue
        if isinstance(value, float):
            rows.append(f"| {key} | {value:.4f} |")
        elif isinstance(value, int) and not isinstance(value, bool):
            rows.append(f"| {key} | {value} |")
    return rows
