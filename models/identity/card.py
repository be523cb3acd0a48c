"""The face embedder's model card (``MODEL_CARD.md``) and ROC picture, from ``deepcanvas eval identity``'s report."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_artifact

CARD_NAME = "MODEL_CARD.md"
ROC_NAME = "roc.png"
DEFAULT_COMMAND = "deepcanvas eval identity models/store/face-embedder/v1 ../shared/data/lfw-funneled --calibrate"


def plot_roc(curve: dict[str, Any], result: dict[str, Any], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4), dpi=100)
    axis.plot(curve["fpr"], curve["tpr"], label=f"AUC {curve['auc']:.4f}")
    same, distances = result["same"], result["distances"]
    tpr, fpr = float(np.mean(distances[same] <= threshold)), float(np.mean(distances[~same] <= threshold))
    axis.scatter([fpr], [tpr], color="red", zorder=3, label=f"shipped distance {threshold:.3f}")
    axis.set_xscale("log")
    axis.set_xlim(1e-3, 1)
    axis.set_ylim(0.8, 1.001)
    axis.set_xlabel("false accept rate (different people called same)")
    axis.set_ylabel("true accept rate")
    axis.set_title(f"LFW pairs through our pipeline ({len(same)} pairs)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def open_set_rows(report: dict[str, Any]) -> list[str]:
    rows = [
        "| gallery (faces) | half | similarity | correct-accept | wrong-name | unknown-accepted |",
        "|---|---|---|---|---|---|",
    ]
    ident = report["identification"]
    for name in ("choose", "report"):
        for table in ident["tables"][name]:
            for threshold in (0.80, 0.85, 0.88, 0.90, 0.92, 0.94):
                at = int(np.argmin(np.abs(np.array(table["thresholds"]) - threshold)))
                rows.append(
                    f"| {table['gallery_size']} | {name} | {table['thresholds'][at]:.3f} | "
                    f"{_pct(table['correct_accept'][at])} | {_pct(table['wrong_name'][at])} | "
                    f"{_pct(table['unknown_accepted'][at])} |"
                )
    return rows


def write_card(folder: Path, report: dict[str, Any], roc_png: Path, command: str = "") -> Path:
    manifest = load_artifact(folder)
    shutil.copyfile(roc_png, folder / ROC_NAME)
    flip = "flip_average" if report["flip_average"] else "plain"
    verification = report["verification"][flip]
    ident = report["identification"]
    sources = manifest.hyperparameters["source_sha256"]
    mapping = report.get("box_mapping", {})
    lines = [
        f"# Model card: {manifest.name}/{manifest.version}",
        "",
        "Face identity for DeepCanvas: dlib's 128-d face-recognition ResNet and its 5-point landmark model, read by",
        "our own importer (`deepcanvas models import-dlib`), served on torch, ONNX Runtime or OpenVINO.",
        "",
        "## What it is for, and not for",
        "- For: recognising people **who have enrolled with their consent** in a gallery the operator controls",
        "  (`POST /identities`), verifying that two photos show the same person (`POST /verify`).",
        "- Not for: identifying people who have not enrolled (no celebrity or crowd search, no surveillance), nor for",
        "  inferring anything else about a person. Enrolments are deleted on request (`DELETE /identities/{id}`); the",
        "  service stores descriptors, not photos. A name answered is a similarity above a threshold, not a proof.",
        "",
        "## Provenance",
        f"- {manifest.provenance.method}",
        f"- Training data (as stated by the author): {manifest.provenance.data}",
        f"- Source sha256: ResNet `{sources['resnet']}`, 5 points `{sources['landmarks']}`,"
        f" LICENSE `{sources['license']}`"
        " (CC0 1.0, in this folder and hashed in the manifest).",
        "- Our reader reproduces dlib: descriptors within 2.3e-7 of dlib's on the same chips, landmarks within a pixel",
        "  (dlib rounds to whole pixels), chips pixel for pixel (`tests/models/identity/test_dlib_oracle.py`).",
        "",
        "## How it was measured",
        f"- Command: `{command or DEFAULT_COMMAND}`",
        f"- Data: deep-funneled LFW, {report['images']} images; `pairs.txt` lists {verification['pairs_listed']}"
        f" pairs, {verification['pairs_usable']} have both images here, {verification['pairs_covered']} had a face"
        " found in both "
        f"by our detector (`{report['detector']}`, the face nearest the image centre).",
        "- LFW identities were excluded from the ResNet's training (author's statement); LFW is used here for"
        " evaluation and for choosing thresholds only. Identities are split in two halves by a hash of the name:"
        " thresholds are"
        " chosen on `choose` and reported on `report`.",
        "",
        "## Verification (LFW pairs)",
        f"- 10-fold cross-validated accuracy (threshold chosen on 9 folds, tested on the 10th): "
        f"**{_pct(verification['ten_fold']['accuracy'])}** ± {_pct(verification['ten_fold']['std'])}.",
        f"- At the shipped `verify_distance` = {report['verify_distance']} (the mean of the ten 9-fold thresholds, so"
        f" chosen on the same pairs; the 10-fold figure above is the honest one): "
        f"**{_pct(report['at_shipped_threshold']['accuracy'])}** of covered pairs, "
        f"{_pct(report['at_shipped_threshold']['accuracy_all_usable'])} counting uncovered pairs as errors.",
        f"- ROC AUC {report['roc_auc']:.4f} (`{ROC_NAME}`). Detection failed on {report['detection_failures']} images.",
        f"- Flip averaging (mean of the chip's and its mirror's descriptors): 10-fold "
        f"{_pct(report['verification']['flip_average']['ten_fold']['accuracy'])} against "
        f"{_pct(report['verification']['plain']['ten_fold']['accuracy'])} without: "
        f"{'kept' if report['flip_average'] else 'not kept'}.",
        "",
        "## Identification",
        f"- Closed set, one photo enrolled per person ({ident['rank1']['people']} people), the "
        f"{ident['rank1']['queries']} other photos queried: rank-1 **{_pct(ident['rank1']['accuracy'])}**.",
        f"- Target scenario (report half, {ident['five_by_three']['draws']} random draws): 5 people enrolled from 3"
        f" photos each, threshold {ident['five_by_three']['threshold']}:"
        f" **{_pct(ident['five_by_three']['named_correctly'])}**"
        f" of their other photos named correctly, **{_pct(ident['five_by_three']['others_null'])}** of other people's"
        " faces answered null.",
        f"- `identify_similarity` per gallery size: the lowest similarity from which on at most "
        f"{_pct(ident['unknown_limit'])} of faces of people held out of the gallery get a name, chosen on `choose`:",
        "",
        "| gallery (faces) | similarity | report: correct-accept | wrong-name | unknown-accepted |",
        "|---|---|---|---|---|",
        *[
            f"| {row['gallery_size']} | {row['similarity']:.3f} | {_pct(row['report']['correct_accept'])} | "
            f"{_pct(row['report']['wrong_name'])} | {_pct(row['report']['unknown_accepted'])} |"
            for row in ident["chosen"]
        ],
        "",
        f"Shipped thresholds: `{report['thresholds']}`. Entries beyond the largest measured gallery are extrapolated"
        " (the 100 → 1,000 step repeated) and not measured: LFW has too few people for a 10,000-face gallery.",
        "",
        "### Open-set table (one photo per enrolled person; a third of each half's people held out as unknowns)",
        "",
        *open_set_rows(report),
        "",
        "## Measured limits, and what we could not measure",
        f"- Box mapping: our detector's boxes are mapped to the boxes dlib's 5-point model was trained on (dlib's HOG"
        f" detector's), measured on the `choose` half: `{mapping.get('box_mapping')}`; landmark error against the"
        f" points on dlib's own boxes, in eye distances: `{mapping.get('landmark_error')}`.",
        "- Head turn (|nose - eye midpoint| / eye distance, the larger of the pair) at the shipped distance:",
        "",
        "| turn | pairs | accuracy |",
        "|---|---|---|",
        *[f"| {row['turn']} | {row['pairs']} | {_pct(row['accuracy'])} |" for row in report["limits"]["by_turn"]],
        "",
        f"- Low light, synthetic: {report['low_light']['pairs']} `report`-half pairs with every photo darkened to"
        f" {report['low_light']['brightness']:.0%} of its brightness plus noise (σ {report['low_light']['noise']}),"
        f" JPEG again, the original detector boxes kept: accuracy {_pct(report['low_light']['accuracy']['dark'])}"
        f" against {_pct(report['low_light']['accuracy']['original'])} on the originals. Detection in the dark and"
        " real low-light photos are not measured.",
        "- Profile faces: LFW holds few; the detector and the 5-point model are frontal-biased, and we did not measure"
        " true profiles. Children: LFW has almost no children; not measured. Low light: not measured on real low-light"
        " photos. Skin tone, age and sex groups: not measured"
        " (LFW's press photos are known to show mostly adult, light-skinned men).",
        "",
    ]
    path = folder / CARD_NAME
    path.write_text("\n".join(lines))
    return path
