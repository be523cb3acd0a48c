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
    resnet_dat: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="dlib_face_recognition_resnet_model_v1.dat")],
    landmarks_dat: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="shape_predictor_5_face_landmarks.dat")],
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
