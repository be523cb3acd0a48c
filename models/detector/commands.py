"""Command functions for the face detector's data, training, evaluation and import (typer signatures).

The CLI wires them as ``deepcanvas data detector``, ``deepcanvas train detector``, ``deepcanvas eval
detector`` and ``deepcanvas models import-yolo``. Heavy modules (torch, ultralytics) are imported inside
each command, so the CLI starts fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from models.figures import FIGURES_HELP
from models.provenance import invoked_command

console = Console()


def synthesize(
    out: Annotated[Path, typer.Argument(help="Folder for the data set: images/, labels/, data.yaml, recipe.json")],
    faces: Annotated[Path, typer.Option(help="Face crops, one folder per person (LFW3D's images/)")],
    background: Annotated[
        list[Path] | None, typer.Option(help="A face-free background photo, or a folder of them; repeatable")
    ] = None,
    style_transfer: Annotated[
        Path | None,
        typer.Option(help="../shared/data/style-transfer: add its hand-checked face-free photos and paintings"),
    ] = None,
    count: Annotated[int, typer.Option(min=1, help="Number of images, validation included")] = 6000,
    size: Annotated[int, typer.Option(min=32, help="Side of the square images in pixels")] = 640,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of validation images")] = 0.1,
    seed: Annotated[int, typer.Option(help="Same seed, same images")] = 0,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes; default: all cores")] = None,
) -> None:
    """Make synthetic face-detection data: LFW3D faces pasted onto face-free backgrounds (YOLO layout)."""
    from models.detector.synthesize import CompositeRecipe, face_free_shared_backgrounds, synthesize_dataset

    backgrounds = list(background or [])
    if style_transfer is not None:
        backgrounds += face_free_shared_backgrounds(style_transfer)
    data_yaml = synthesize_dataset(
        out,
        faces,
        backgrounds,
        count=count,
        recipe=CompositeRecipe(size=size),
        val_fraction=val_fraction,
        seed=seed,
        workers=workers or os.cpu_count() or 1,
    )
    console.print(f"wrote {count} images; data file {data_yaml}")


def mixed(
    out: Annotated[
        Path, typer.Argument(help="Folder for the data set (outside the repository): data.yaml, recipe.json")
    ],
    shared: Annotated[Path, typer.Option(help="The shared data root (../shared): photos, faces, backgrounds")],
    teacher: Annotated[
        Path | None, typer.Option(help="Teacher ONNX; default: data/weights/ultralight-face-rfb/version-RFB-640.onnx")
    ] = None,
    keep: Annotated[float, typer.Option(min=0.3, max=1.0, help="Teacher score for a face label")] = 0.8,
    min_side: Annotated[float, typer.Option(min=1, help="Smaller faces (px, in the written view) are greyed out")] = 8,
    size: Annotated[int, typer.Option(min=64, help="Longest side of written photos and composites")] = 640,
    views: Annotated[int, typer.Option(min=1, help="Views per training photo: whole, then crops")] = 2,
    composites: Annotated[int, typer.Option(min=1, help="Composites per face set (LFW3D, natural crops)")] = 1500,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5, help="Share of real photos for validation")] = 0.1,
    seed: Annotated[int, typer.Option(help="Same seed, same data")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes for the composites")] = 1,
    hard_negatives_from: Annotated[
        Path | None, typer.Option(help="Detector artifact whose false faces (teacher-rejected) become views")
    ] = None,
) -> None:
    """Label real photos with a teacher detector and add hard composites: the mixed detector data set.

    The validation photos (``models/detector/validation``) are never written.
    """
    from models.detector.mixed import MixedSources, build_mixed_dataset
    from models.detector.real_photos import LabelPolicy

    policy = LabelPolicy(keep=keep, min_side=min_side, size=size, views=views)
    sources = MixedSources.from_shared(shared, teacher, hard_negatives_from)
    data_yaml = build_mixed_dataset(out, sources, composites, policy, None, val_fraction, seed, workers)
    console.print(f"data file {data_yaml}; recipe {data_yaml.parent / 'recipe.json'}")


def train(
    data: Annotated[Path, typer.Argument(help="The data set's data.yaml (from `deepcanvas data detector`)")],
    out: Annotated[Path, typer.Argument(help="Run folder: ultralytics/ (checkpoints) and artifact/")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs")] = 30,
    imgsz: Annotated[int, typer.Option(min=32, help="Training and serving input side in pixels")] = 640,
    batch: Annotated[int, typer.Option(min=1, help="Images per batch")] = 16,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    workers: Annotated[int, typer.Option(min=0, help="Data loading processes")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (ultralytics deterministic mode)")] = 0,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without improvement")] = 100,
    hours: Annotated[
        float | None, typer.Option(min=0.01, help="Time budget; ultralytics fits the epochs and LR schedule into it")
    ] = None,
    base: Annotated[Path | None, typer.Option(help="Artifact folder to start from instead of random")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch threads on the CPU; default: every core")] = None,
    amp: Annotated[bool | None, typer.Option("--amp/--no-amp", help="Mixed precision; default: on CUDA")] = None,
    cache: Annotated[bool, typer.Option(help="Keep decoded images in memory")] = False,
    fraction: Annotated[float, typer.Option(min=0.001, max=1.0, help="Share of training images (smoke runs)")] = 1.0,
    fresh: Annotated[bool, typer.Option(help="Start over instead of resuming an unfinished run")] = False,
    name: Annotated[str, typer.Option(help="Artifact name")] = "face-detector",
    version: Annotated[str, typer.Option(help="Artifact version")] = "v1",
    boxes: Annotated[Path | None, typer.Option(help="boxes.json of real photos to evaluate on afterwards")] = None,
    images: Annotated[Path | None, typer.Option(help="Their photos; default: images/ beside boxes.json")] = None,
    figures: Annotated[Path | None, typer.Option(help=FIGURES_HELP)] = None,
) -> None:
    """Train YOLOv5s on a synthetic data set (resumable) and write the face detector artifact."""
    from models.detector.train import DetectorTrainConfig, train_detector

    cfg = DetectorTrainConfig(
        data=data,
        out_dir=out,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=workers,
        seed=seed,
        patience=patience,
        hours=hours,
        base_artifact=base,
        threads=threads,
        amp=amp,
        cache=cache,
        fraction=fraction,
        resume=not fresh,
        name=name,
        version=version,
        eval_boxes=boxes,
        eval_images=images or (boxes.parent / "images" if boxes else None),
        command=invoked_command(),
        figures=figures,
    )
    manifest = train_detector(cfg)
    console.print(f"wrote {cfg.artifact_dir}: {json.dumps(manifest.metrics)}")


def evaluate(
    artifact: Annotated[Path, typer.Argument(help="Detector artifact folder")],
    boxes: Annotated[Path, typer.Argument(help="boxes.json: {photo: {split, boxes_xywh}}")],
    images: Annotated[Path | None, typer.Option(help="The photos; default: images/ beside boxes.json")] = None,
    split: Annotated[str | None, typer.Option(help="Only this split of boxes.json (train or test)")] = None,
    conf: Annotated[float | None, typer.Option(min=0, max=1, help="Operating confidence; default: shipped")] = None,
    iou_match: Annotated[float, typer.Option(min=0.05, max=0.95, help="IoU for a true positive")] = 0.5,
    imgsz: Annotated[int | None, typer.Option(min=32, help="Input side; default: the artifact's")] = None,
    card: Annotated[Path | None, typer.Option(help="Folder for the model card; default: no card")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    figures: Annotated[Path | None, typer.Option(help=FIGURES_HELP)] = None,
) -> None:
    """AP50, precision and recall of a detector artifact on photos with hand-drawn face boxes."""
    from models.detector.evaluate import evaluate_detector, write_card_for
    from models.figures import figures_folder

    images = images or boxes.parent / "images"
    result = evaluate_detector(artifact, boxes, images, conf, iou_match, split, imgsz, device)
    if card is not None:
        name, _, version = str(result["model"]).partition("/")
        pictures = figures or figures_folder(name, version)
        console.print(f"wrote {write_card_for(result, images, card, figures=pictures)}; pictures in {pictures}")
    print(json.dumps({k: v for k, v in result.items() if k not in ("pr_curve", "results")}, indent=2))


def report(
    artifact: Annotated[Path, typer.Argument(help="Detector artifact folder")],
    boxes: Annotated[Path, typer.Argument(help="face-boxes boxes.json (its train split chooses the point)")],
    teacher: Annotated[Path | None, typer.Option(help="Teacher ONNX, to report its numbers beside ours")] = None,
    sizes: Annotated[str, typer.Option(help="Input sizes to compare, comma-separated")] = "320,416,480,640",
    backend: Annotated[
        str, typer.Option(help="Backend timed for the latency budget: openvino, onnx or torch")
    ] = "openvino",
    max_latency_ms: Annotated[float, typer.Option(min=1, help="Budget for one 1280×720 photo")] = 60.0,
    group_photos: Annotated[
        list[Path] | None, typer.Option(help="Group photos to draw detections on; repeatable")
    ] = None,
    portraits: Annotated[
        list[Path] | None, typer.Option(help="One-face portraits to count boxes on; repeatable")
    ] = None,
    card: Annotated[
        Path | None, typer.Option(help="Folder for the model card (default: the artifact with --apply)")
    ] = None,
    apply: Annotated[
        bool, typer.Option(help="Ship the chosen conf and imgsz as the artifact's defaults, card inside")
    ] = False,
    min_size: Annotated[
        float, typer.Option(min=0, help="Shipped smallest face side in the photo's pixels (0: every box)")
    ] = 0.0,
    figures: Annotated[Path | None, typer.Option(help=FIGURES_HELP)] = None,
) -> None:
    """Choose conf and imgsz on the train photos; report test / all beside the teacher; write the model card."""
    from models.detector.report import apply_operating_point, detector_report, open_predictor, rehash, sweep_table
    from models.detector.report_card import write_report_card

    images = boxes.parent / "images"
    size_list = [int(size) for size in sizes.split(",")]
    result = detector_report(artifact, boxes, images, size_list, teacher, backend, max_latency_ms, min_size)
    print("\n".join(sweep_table(result["sweep"], confs=[row["conf"] for row in result["sweep"]])))
    summary = {key: result[key] for key in ("operating_point", "train", "test", "all")}
    if "teacher" in result:
        summary["teacher"] = {k: v for k, v in result["teacher"].items() if k != "pr_curve"}
    print(json.dumps(summary, indent=2))
    if apply:
        apply_operating_point(artifact, result)
    out = card or (artifact if apply else None)
    if out is not None:
        from models.artifact import load_artifact
        from models.figures import figures_folder

        manifest = load_artifact(artifact)
        provenance = manifest.provenance
        header = [f"- Provenance: {provenance.method}", f"- Command: `{provenance.command}`"]
        header += [f"- Commit: {provenance.commit}", f"- Report: `{invoked_command()}`"]
        predict = open_predictor(artifact, "torch")
        pictures = figures or figures_folder(manifest.name, manifest.version)
        path = write_report_card(
            out, result, images, predict, group_photos or [], portraits or [], header, figures=pictures
        )
        if out == artifact:
            rehash(artifact)
        console.print(f"wrote {path}; pictures of ../shared's photos (not shipped) in {pictures}")


def import_yolo(
    checkpoint: Annotated[Path, typer.Argument(help="A local ultralytics .pt file (never a URL)")],
    out: Annotated[Path, typer.Argument(help="Folder to write the artifact into")],
    name: Annotated[str, typer.Option(help="Artifact name")] = "yolov5su",
    version: Annotated[str, typer.Option(help="Artifact version")] = "v1",
    sha256: Annotated[str | None, typer.Option(help="Refuse the file unless it has this sha256")] = None,
    trust_pickle: Annotated[
        bool, typer.Option(help="Allow full unpickling (runs code from the file) if the safe load refuses it")
    ] = False,
    cfg: Annotated[str | None, typer.Option(help="ultralytics model config; default: the checkpoint's")] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels; default: the checkpoint's")] = None,
) -> None:
    """Convert an ultralytics YOLO checkpoint (e.g. yolov5su.pt) into a detector artifact."""
    from models.detector.importer import import_yolo as convert

    label_list = [label.strip() for label in labels.split(",")] if labels else None
    manifest = convert(checkpoint, out, name, version, sha256, trust_pickle, cfg, label_list, invoked_command())
    console.print(f"wrote {out}: {manifest.name}/{manifest.version}, {len(manifest.labels)} labels")


def import_rfb(
    onnx_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="version-RFB-640.onnx (MIT)")],
    license_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Its LICENSE file")],
    out: Annotated[Path, typer.Argument(help="Artifact folder to write (replaced)")],
    name: Annotated[str, typer.Option(help="Artifact name")] = "face-detector",
    version: Annotated[str, typer.Option(help="Artifact version")] = "v4",
    boxes: Annotated[
        Path | None, typer.Option(help="face-boxes boxes.json: measure the box framing map on its train photos")
    ] = None,
    coarse: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="version-RFB-320.onnx: a second, coarse pass for faces filling the photo"
        ),
    ] = None,
    coarse_min_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Coarse boxes join from this share of the photo's shorter side")
    ] = 0.3,
) -> None:
    """Import the Ultra-Light RFB face detector (ONNX, MIT) as a detector artifact, its LICENSE hashed in."""
    from models.detector.rfb_import import import_rfb as write

    manifest = write(onnx_file, license_file, out, name, version, boxes, invoked_command(), coarse, coarse_min_share)
    console.print(f"wrote {out}: {manifest.name}/{manifest.version} ({manifest.architecture})")


def rfb_views(
    source: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="An imported RFB artifact with --coarse")
    ],
    out: Annotated[Path, typer.Argument(help="Artifact folder to write (replaced)")],
    version: Annotated[str, typer.Option(help="The new artifact's version")],
    shape: Annotated[
        list[str] | None,
        typer.Option(help="An input shape WIDTHxHEIGHT to read photos of its aspect at (repeat); the documented one"),
    ] = None,
) -> None:
    """Add view graphs to an imported RFB artifact: photos read at the listed shape nearest their aspect."""
    from models.detector.rfb_import import add_views, parse_shape

    try:
        shapes = [parse_shape(text) for text in shape or ["640x480"]]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--shape") from error
    manifest = add_views(source, out, shapes, version, invoked_command())
    views = manifest.hyperparameters["views"]
    console.print(
        f"wrote {out}: {manifest.name}/{manifest.version}, shapes {views['shapes']}, "
        f"cut checked to {views['cut_max_difference']:.1e}"
    )


def main() -> None:
    """``python -m models.detector.commands data|train|eval|import-yolo ...`` (before the CLI wiring)."""
    app = typer.Typer(help="Face detector: synthetic data, training, evaluation and checkpoint import.")
    app.command("data")(synthesize)
    app.command("data-mixed")(mixed)
    app.command("train")(train)
    app.command("eval")(evaluate)
    app.command("report")(report)
    app.command("import-yolo")(import_yolo)
    app.command("import-rfb")(import_rfb)
    app.command("rfb-views")(rfb_views)
    app()


if __name__ == "__main__":
    main()
