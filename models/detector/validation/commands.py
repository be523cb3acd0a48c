"""``deepcanvas data detector-validation`` and ``deepcanvas eval detector-validation``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from models.detector.validation import BOXES_JSON
from models.figures import FIGURES_ROOT

console = Console()
SHEET_PHOTOS = 36
# The sheets are thumbnails of ../shared's photos: never beside boxes.json, which the repository commits.
SHEETS_FOLDER = FIGURES_ROOT / "detector-validation"


def build(
    shared: Annotated[Path, typer.Option(help="The shared data root (../shared)")],
    convention_from: Annotated[
        Path, typer.Option(help="An RFB artifact whose manifest records the framing map to face-boxes")
    ] = Path("models/store/face-detector/v4"),
    teacher: Annotated[Path | None, typer.Option(help="Teacher ONNX; default: the shared RFB-640")] = None,
    out: Annotated[Path, typer.Option(help="boxes.json to write")] = BOXES_JSON,
    figures: Annotated[
        Path, typer.Option(help="Folder for the contact sheets (thumbnails of ../shared's photos: never committed)")
    ] = SHEETS_FOLDER,
) -> None:
    """Label the validation photos with the tiled teacher, apply the by-eye corrections, draw contact sheets."""
    from models.artifact import load_artifact
    from models.detector.rfb_predictor import served_convention
    from models.detector.validation.labels import build_validation
    from models.detector.validation.sheets import contact_sheet

    teacher = teacher or shared / "data" / "weights" / "ultralight-face-rfb" / "version-RFB-640.onnx"
    document = build_validation(shared, teacher, served_convention(load_artifact(convention_from)))
    out.write_text(json.dumps(document, indent=1) + "\n")
    names = sorted(document["photos"])
    figures.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(names), SHEET_PHOTOS):
        sheet = contact_sheet(shared, document["photos"], names[k : k + SHEET_PHOTOS])
        sheet.save(figures / f"contact_sheet_{k // SHEET_PHOTOS}.jpg", quality=80)
    console.print(f"wrote {out}: {document['counts']}; contact sheets (not committed) in {figures}")


def evaluate(
    artifacts: Annotated[list[Path], typer.Argument(help="Detector artifact folders to compare")],
    shared: Annotated[Path, typer.Option(help="The shared data root (../shared)")],
    boxes: Annotated[Path, typer.Option(help="The validation boxes.json")] = BOXES_JSON,
    backend: Annotated[str, typer.Option(help="torch, onnx or openvino")] = "openvino",
    max_latency_ms: Annotated[float, typer.Option(help="CPU ms budget for one 1280×720 photo")] = 40.0,
    face_boxes: Annotated[Path | None, typer.Option(help="face-boxes boxes.json: the hand-drawn check")] = None,
    apply: Annotated[bool, typer.Option(help="Write the chosen defaults, metrics and card section")] = False,
    doc: Annotated[Path | None, typer.Option(help="Markdown file to put the comparison in")] = None,
    json_out: Annotated[Path | None, typer.Option(help="Write every number here as JSON")] = None,
    sizes: Annotated[str, typer.Option(help="YOLO input sizes to try, comma-separated")] = "320,480,640",
    reuse: Annotated[
        Path | None, typer.Option(help="Numbers of an earlier run (its --json-out): report and apply, no measuring")
    ] = None,
) -> None:
    """Choose each artifact's conf, input size and tiling on the validation set, and compare them."""
    from models.detector.validation.choose import evaluate_artifact, nan_to_none
    from models.detector.validation.labels import read_validation
    from models.detector.validation.report import replace_section, report_markdown
    from models.provenance import invoked_command

    photos = read_validation(boxes)
    size_list = tuple(int(size) for size in sizes.split(","))
    if reuse is not None:
        reports = json.loads(reuse.read_text())
        assert len(reports) == len(artifacts), f"{reuse} holds {len(reports)} reports for {len(artifacts)} artifacts"
    else:
        reports = [
            nan_to_none(evaluate_artifact(a, shared, photos, backend, max_latency_ms, face_boxes, size_list))
            for a in artifacts
        ]
        for report in reports:
            report["command"] = invoked_command()
    runs: dict[str, list[str]] = {}  # each command and the artifacts it measured (a --reuse may combine runs)
    for report in reports:
        runs.setdefault(report.get("command", invoked_command()), []).append(report["artifact"])
    measured_by = " and ".join(
        f"`{command}`" + (f" ({', '.join(names)})" if len(runs) > 1 else "") for command, names in runs.items()
    )
    preface = [
        f"Measured by {measured_by}: {len(photos)} validation photos, "
        f"{reports[0]['details']['faces']} faces of 24 px or more (boxes: the RFB teacher, tiled, checked by eye; "
        "so the RFB's own numbers are optimistic here, and the hand-drawn face-boxes column is the independent "
        f"check). Latency: median CPU time (wall-clock beside it) for one 1280×720 group photo on {backend}, "
        "on this project's shared 2-core machine while training runs shared the cores.",
    ]
    markdown = report_markdown(reports, preface)
    if json_out:
        json_out.write_text(json.dumps(reports, indent=1) + "\n")
    if doc:
        replace_section(doc, markdown, "Validation set: the detectors compared")
    if apply:
        for artifact, report in zip(artifacts, reports, strict=True):
            apply_choice(artifact, report, markdown)
    console.print(markdown)


def apply_choice(artifact: Path, report: dict[str, Any], markdown: str) -> None:
    """The chosen defaults and the validation metrics into the manifest, the report into the card."""
    from models.artifact import load_artifact, repack_artifact
    from models.detector.evaluate import CARD_NAME
    from models.detector.validation.report import replace_section

    manifest = load_artifact(artifact)
    chosen, details = report["chosen"], report["details"]
    defaults = {**manifest.defaults, "conf": chosen["conf"], "tile": chosen["tile"], "min_size": 24.0}
    defaults |= {"tile_above": chosen["tile_above"]} if "tile_above" in chosen else {}
    metrics = {**manifest.metrics} | {f"validation_{k}": float(v) for k, v in details["all"].items()}
    metrics |= {f"validation_crowds_32px_{k}": float(v) for k, v in details["crowds_32px"].items()}
    metrics |= {f"validation_face_boxes_{k}": float(v) for k, v in report.get("face_boxes", {}).items()}
    changes: dict[str, Any] = {"defaults": defaults, "metrics": metrics}
    if manifest.input is not None:
        changes["input"] = manifest.input.model_copy(update={"size": int(chosen["imgsz"])})
    replace_section(artifact / CARD_NAME, markdown, "Validation set (defaults chosen here)")
    repack_artifact(artifact, **changes)
