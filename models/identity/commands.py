"""Typer commands for identity: ``deepcanvas models import-dlib``, ``eval identity-boxes``, ``eval identity``.

Plain functions; the CLI registers them (``models_cli.command("import-dlib")(identity.import_dlib)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from models.provenance import invoked_command

console = Console()
ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def import_dlib(
    resnet_dat: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="dlib_face_recognition_resnet_model_v1.dat")
    ],
    landmarks_dat: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="shape_predictor_5_face_landmarks.dat")
    ],
    license_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Their LICENSE (CC0)")],
    out_dir: Annotated[Path, typer.Argument(help="Artifact folder to write (new or empty)")],
    version: str = "v1",
    export: Annotated[bool, typer.Option(help="Also add resnet.onnx (deepcanvas models export)")] = True,
) -> None:
    """Import dlib's face ResNet and 5-point landmarks (public domain) as a face-embedder artifact."""
    from models.identity.importer import import_dlib as convert

    manifest = convert(resnet_dat, landmarks_dat, license_file, out_dir, version, invoked_command())
    if export:
        from models.onnx_export import export_artifact

        manifest = export_artifact(out_dir)
    console.print(f"imported {manifest.name}/{manifest.version} into {out_dir}: {[f.path for f in manifest.files]}")


def evaluate(
    artifact: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="A face-embedder artifact folder")],
    lfw_root: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="LFW folder (pairs.txt, images/)")],
    detector: Annotated[
        Path,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Face-detector artifact (or model folder: its stable version), in-process",
        ),
    ] = Path("models/store/face-detector"),
    out: Annotated[Path, typer.Option(help="Folder for identity-report.json and roc.png")] = Path("runs/identity"),
    cache: Annotated[Path, typer.Option(help="Cached detections and descriptors")] = Path("../data/identity"),
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Measure box mapping, flip averaging, thresholds; write them, metrics and the card into ARTIFACT"
        ),
    ] = False,
) -> None:
    """LFW verification (10-fold, at the threshold, ROC) and identification (rank-1, open-set table)."""
    import json
    import time

    from models.identity.evaluate import evaluate_identity

    def log(message: str) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {message}")

    report = evaluate_identity(artifact, lfw_root, detector, out, cache, calibrate, log, invoked_command())
    summary = {
        k: report[k]
        for k in (
            "verify_distance",
            "at_shipped_threshold",
            "roc_auc",
            "detection_failures",
            "thresholds",
            "flip_average",
        )
    }
    summary["ten_fold"] = {name: v["ten_fold"]["accuracy"] for name, v in report["verification"].items()}
    summary["five_by_three"] = report["identification"]["five_by_three"]
    summary["rank1"] = report["identification"]["rank1"]
    console.print(json.dumps(summary, indent=2, default=float))
