"""Import the Ultra-Light RFB face detector (Linzaer, MIT) as a served ``face-detector`` version.

The authors' ONNX file is copied in as ``model.onnx`` with their ``LICENSE`` (both hashed in the manifest,
and the source files' sha256 recorded); the one change is that its weights are no longer also listed as
graph inputs (the same nodes and weights, so the same outputs). The
manifest states the whole contract a loader needs: architecture, input width and height, normalisation,
box convention and what a score means. Given the hand-drawn ``face-boxes``, the import measures the
mapping from the network's framing (WIDER FACE: narrow, forehead to chin) to the face-boxes framing the
YOLO detectors learnt, fitted on its ``train`` photos only, and serves boxes in that framing.

``coarse`` adds the authors' smaller export (RFB-320, same training, same licence) as ``coarse.onnx``: the
predictor reads the whole photo with it too and keeps its faces of at least ``min_share`` of the photo's
shorter side, the close-ups the 640 px network misses (a face filling the frame outgrows its largest
priors). The framing map measured for the main export applies to both.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from models.artifact import ArtifactError, InputSpec, Manifest, Provenance, pack_artifact, sha256_file
from models.detector.rfb import ARCHITECTURE, PIXEL_MEAN, PIXEL_SCALE
from models.detector.types import COARSE_ONNX_FILE, ONNX_FILE
from models.provenance import git_commit

SOURCE = "Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB (MIT, Copyright (c) 2019 linzai)"
LICENSE_FILE = "LICENSE"
# Until a validation set chooses them (``deepcanvas eval detector-validation --apply``).
IMPORT_DEFAULTS: dict[str, Any] = {"conf": 0.7, "iou": 0.3, "max_det": 300, "min_size": 24.0, "tile": "auto"}
COARSE_MIN_SHARE = 0.3  # the coarse pass's boxes join when their shorter side is this share of the photo's


def write_without_initializer_inputs(source: Path, target: Path) -> int:
    """Copy the ONNX graph with its weights no longer listed as graph inputs; returns how many were listed.

    The authors' exporter listed every weight as an input too: ONNX Runtime then logs one warning per
    weight and cannot fold them as constants. Nothing else changes: the same nodes and the same weights.
    """
    import onnx

    model = onnx.load(str(source))
    weights = {init.name for init in model.graph.initializer}
    listed = [i for i in model.graph.input if i.name in weights]
    for entry in listed:
        model.graph.input.remove(entry)
    onnx.save(model, str(target))
    return len(listed)


def onnx_input_size(path: Path) -> tuple[int, int]:
    """(width, height) of the export's fixed (1, 3, H, W) input; ``ArtifactError`` for anything else."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inputs = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    names = {output.name for output in graph.output}
    if len(inputs) != 1 or not {"scores", "boxes"} <= names:
        raise ArtifactError(f"{path}: not an RFB export (one input; outputs scores and boxes)")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or min(dims[2:]) <= 0:
        raise ArtifactError(f"{path}: expected a fixed (1, 3, H, W) input, got {dims}")
    return dims[3], dims[2]


def measure_convention(onnx_file: Path, boxes_json: Path | None) -> dict[str, Any]:
    """The framing map to face-boxes, fitted on its train photos (identity, unmeasured, without them)."""
    if boxes_json is None:
        return {"measured": False, "mapping": {}}
    from models.detector.mixed import teacher_convention
    from models.detector.teacher import FaceTeacher

    fitted, report = teacher_convention(FaceTeacher.from_onnx(onnx_file), boxes_json, keep=0.8)
    return {**{k: v for k, v in report.items() if k != "convention"}, "mapping": fitted.as_dict()}


def import_rfb(
    onnx_file: Path,
    license_file: Path,
    out: Path,
    name: str = "face-detector",
    version: str = "v4",
    boxes_json: Path | None = None,
    command: str | None = None,
    coarse_file: Path | None = None,
    coarse_min_share: float = COARSE_MIN_SHARE,
) -> Manifest:
    """Write the artifact into ``out`` (replaced whole, so no stale file is listed) and return its manifest."""
    width, height = onnx_input_size(onnx_file)
    sources = [onnx_file.name] + ([coarse_file.name] if coarse_file else [])
    convention = measure_convention(onnx_file, boxes_json)
    served = "face-boxes (hand-drawn dlib framing)" if convention.get("measured") else "the network's own"
    hyperparameters = {
        "input_width": width,
        "input_height": height,
        "resize": f"the RGB photo stretched to {width}x{height} (aspect not kept), as its authors run it",
        "normalisation": f"(pixel - {PIXEL_MEAN:g}) / {PIXEL_SCALE:g}, RGB",
        "outputs": "scores (1, N, 2), column 1 face; boxes (1, N, 4) x1, y1, x2, y2 as fractions of the "
        "width and height, the priors decoded inside the ONNX graph",
        "score": "conf is the network's softmax probability of face for one prior box (WIDER FACE training); "
        "see the model card's reliability table for what it means on photos",
        "box_convention": {"network": "WIDER FACE framing", "served": served, **convention},
        "engines": "ONNX Runtime or OpenVINO only: the torch backend runs it on ONNX Runtime",
        "source_sha256": {"onnx": sha256_file(onnx_file), "license": sha256_file(license_file)},
    }
    if coarse_file is not None:
        coarse_width, coarse_height = onnx_input_size(coarse_file)
        if coarse_width >= width:
            raise ArtifactError(f"{coarse_file}: the coarse export must take a smaller input than {width}x{height}")
        hyperparameters["coarse"] = {
            "file": COARSE_ONNX_FILE,
            "input_width": coarse_width,
            "input_height": coarse_height,
            "min_share": coarse_min_share,
            "why": "the whole photo read again at the smaller input, where faces that fill a close-up fit the "
            "network's largest priors; only its boxes of at least min_share of the photo's shorter side join",
            "source_sha256": sha256_file(coarse_file),
        }
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "task": "detect",
        "architecture": ARCHITECTURE,
        "hyperparameters": hyperparameters,
        "input": InputSpec(size=width, mean=(PIXEL_MEAN / 255,) * 3, std=(PIXEL_SCALE / 255,) * 3),
        "labels": ["face"],
        "defaults": dict(IMPORT_DEFAULTS),
        "provenance": Provenance(
            method=f"imported: {SOURCE} ({', '.join(sources)}), trained by its authors on WIDER FACE; "
            "weights unchanged",
            data="WIDER FACE (its authors' training)",
            command=command,
            commit=git_commit(),
        ),
    }
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as staging:
        folder = Path(staging) / "artifact"
        folder.mkdir()
        hyperparameters["weights_listed_as_inputs_removed"] = write_without_initializer_inputs(
            onnx_file, folder / ONNX_FILE
        )
        if coarse_file is not None:
            write_without_initializer_inputs(coarse_file, folder / COARSE_ONNX_FILE)
        shutil.copyfile(license_file, folder / LICENSE_FILE)
        manifest = pack_artifact(folder, **fields)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(folder, out)
    return manifest
