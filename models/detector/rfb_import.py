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

``add_views`` derives a version from an imported one that also ships both graphs cut before their prior
decoding (``rfb.py``, "view graph"), each of whose inputs takes any size: the predictor then reads each photo
at the listed input shape nearest its own aspect (the authors' 640×480 stretch stays the shape for photos
nearest 4:3) and decodes only the boxes that pass the score floor. The cut is checked when it is made: at the
documented input, the decoded boxes and the scores must match the whole graph's.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.artifact import ArtifactError, InputSpec, Manifest, Provenance, pack_artifact, sha256_file
from models.detector.rfb import (
    ARCHITECTURE,
    BOXES_NAME,
    LOCATIONS_NAME,
    PIXEL_MEAN,
    PIXEL_SCALE,
    SCORES_NAME,
    PriorSpec,
    rfb_priors,
)
from models.detector.types import COARSE_ONNX_FILE, COARSE_VIEWS_FILE, ONNX_FILE, VIEWS_FILE
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


CUT_TOLERANCE = 1e-4  # the cut graph's decoded boxes and scores against the whole graph's, at its own input


def _ancestors(producers: dict[str, Any], names: set[str]) -> set[str]:
    """Every tensor the ``names`` are computed from (themselves included)."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in producers:
            stack.extend(producers[name].input)
    return seen


def write_view_graph(source: Path, target: Path, spec: PriorSpec = PriorSpec()) -> float:
    """Write ``source`` (an RFB export) cut before its prior decoding, with an input of any height and width.

    The outputs become ``scores`` and ``locations``: the concatenation of the heads' reshaped outputs that the
    whole graph decodes its boxes from. Returns the largest difference of the cut graph's scores and decoded
    boxes from the whole graph's on one input of the documented size; over ``CUT_TOLERANCE`` (or a graph of
    another shape) is an ``ArtifactError``, and nothing is written.
    """
    import onnx

    width, height = onnx_input_size(source)
    model = onnx.load(str(source))
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    from_scores = _ancestors(producers, {SCORES_NAME})
    heads = [
        node
        for node in graph.node
        if node.op_type == "Concat"
        and node.output[0] in _ancestors(producers, {BOXES_NAME}) - from_scores
        and all(name in producers and producers[name].op_type == "Reshape" for name in node.input)
    ]
    if len(heads) != 1:
        raise ArtifactError(f"{source}: cannot find where the graph decodes its priors ({len(heads)} candidates)")
    locations = heads[0].output[0]
    kept = _ancestors(producers, {SCORES_NAME, locations})
    nodes = [node for node in graph.node if any(output in kept for output in node.output)]
    heads[0].output[0] = LOCATIONS_NAME
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    del graph.output[:]
    graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, "priors", columns])
        for name, columns in ((SCORES_NAME, 2), (LOCATIONS_NAME, 4))
    )
    [image] = [i for i in graph.input if i.name not in {init.name for init in graph.initializer}]
    for index, axis in ((2, "height"), (3, "width")):
        dim = image.type.tensor_type.shape.dim[index]
        dim.ClearField("dim_value")
        dim.dim_param = axis
    onnx.checker.check_model(model)
    with tempfile.TemporaryDirectory() as staging:
        cut = Path(staging) / target.name
        onnx.save(model, str(cut))
        difference = _cut_difference(source, cut, width, height, spec)
        if not difference <= CUT_TOLERANCE:
            raise ArtifactError(f"{source}: the cut graph differs from the whole one by {difference:g}")
        shutil.copyfile(cut, target)
    return difference


def _outputs(file: Path, names: list[str], pixels: Any) -> list[Any]:
    """``file``'s outputs ``names`` for one float input, on ONNX Runtime with the service's session options."""
    import onnxruntime as ort

    from models.onnx_backend import session_options

    options = session_options()
    options.log_severity_level = 3  # the authors' graphs carry unused initializers, one warning each
    return list(ort.InferenceSession(str(file), options).run(names, {"input": pixels}))


def _cut_difference(whole: Path, cut: Path, width: int, height: int, spec: PriorSpec) -> float:
    """The largest difference of ``cut``'s scores and decoded boxes from ``whole``'s, on ONNX Runtime."""
    import numpy as np

    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
    scores, boxes = _outputs(whole, [SCORES_NAME, BOXES_NAME], pixels)
    cut_scores, locations = _outputs(cut, [SCORES_NAME, LOCATIONS_NAME], pixels)
    priors = rfb_priors(width, height, spec)
    if locations.shape[1] != len(priors.boxes):
        return float("inf")
    decoded = priors.decode(locations[0], np.ones(len(priors.boxes), dtype=bool))
    return float(max(np.abs(cut_scores - scores).max(), np.abs(decoded - boxes[0]).max()))


def _check_priors(file: Path, shape: tuple[int, int], spec: PriorSpec) -> None:
    """``ArtifactError`` unless the cut graph at ``shape`` gives one location per prior ``rfb_priors`` makes."""
    import numpy as np

    width, height = shape
    try:
        [locations] = _outputs(file, [LOCATIONS_NAME], np.zeros((1, 3, height, width), np.float32))
    except Exception as error:  # onnxruntime's own error types derive from Exception only
        raise ArtifactError(f"{file.name} does not run at {width}x{height}: {error}") from error
    if locations.shape[1] != len(rfb_priors(width, height, spec).boxes):
        raise ArtifactError(f"{file.name} at {width}x{height}: {locations.shape[1]} locations for other priors")


def parse_shape(text: str) -> tuple[int, int]:
    """``"640x480"`` as (640, 480)."""
    try:
        width, height = (int(side) for side in text.lower().split("x"))
    except ValueError as error:
        raise ValueError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from error
    return width, height


def add_views(
    source: Path,
    out: Path,
    shapes: list[tuple[int, int]],
    version: str,
    command: str | None = None,
) -> Manifest:
    """Write ``source`` (an imported RFB artifact with a coarse export) as ``version`` in ``out``, adding the
    view graphs and the input ``shapes`` the predictor chooses among; everything else is ``source``'s, except
    its model card and metrics, which are the new version's to measure (``eval detector-validation --apply``)."""
    from models.artifact import load_artifact

    manifest = load_artifact(source)
    hyperparameters = dict(manifest.hyperparameters)
    if manifest.architecture != ARCHITECTURE or not isinstance(hyperparameters.get("coarse"), dict):
        raise ArtifactError(f"{source}: views need an imported {ARCHITECTURE} artifact with a coarse export")
    width, height = hyperparameters["input_width"], hyperparameters["input_height"]
    coarse = hyperparameters["coarse"]
    ratio = width // coarse["input_width"]
    if ratio < 2 or (width, height) != (ratio * coarse["input_width"], ratio * coarse["input_height"]):
        raise ArtifactError(f"{source}: the coarse input must be the documented input over a whole ratio of 2 or more")
    shapes = [(int(w), int(h)) for w, h in shapes]
    if (width, height) not in shapes:
        raise ArtifactError(f"the shapes must include the documented input {width}x{height}: {shapes}")
    aspects = [round(w / h, 6) for w, h in shapes]
    if len(set(aspects)) != len(aspects):
        raise ArtifactError(f"{shapes}: two shapes of one aspect (the second would never be chosen)")
    for shape in shapes:
        if min(shape) < 64 or any(side % (2 * ratio) for side in shape):
            raise ArtifactError(f"{shape}: each side must be at least 64 and a multiple of {2 * ratio}")
    spec = PriorSpec()
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as staging:
        folder = Path(staging) / "artifact"
        folder.mkdir()
        for entry in manifest.files:
            if entry.path != "MODEL_CARD.md":
                shutil.copyfile(source / entry.path, folder / entry.path)
        differences = [
            write_view_graph(folder / ONNX_FILE, folder / VIEWS_FILE, spec),
            write_view_graph(folder / COARSE_ONNX_FILE, folder / COARSE_VIEWS_FILE, spec),
        ]
        for shape in shapes:  # every listed shape, and its coarse half, gives one location per prior
            _check_priors(folder / VIEWS_FILE, shape, spec)
            _check_priors(folder / COARSE_VIEWS_FILE, (shape[0] // ratio, shape[1] // ratio), spec)
        hyperparameters["resize"] = (
            f"the RGB photo stretched to the listed view shape nearest its aspect ({width}x{height} for 4:3 and "
            f"wider; aspect otherwise not kept), as its authors stretch to {width}x{height}"
        )
        hyperparameters["outputs"] = (
            f"{VIEWS_FILE} and {COARSE_VIEWS_FILE}: scores (1, N, 2), column 1 face; locations (1, N, 4), the "
            "priors' raw offsets, decoded outside the graph for the priors over the score floor; "
            f"{ONNX_FILE} and {COARSE_ONNX_FILE} (the authors' graphs): boxes decoded inside the graph"
        )
        hyperparameters["views"] = {
            "file": VIEWS_FILE,
            "coarse_file": COARSE_VIEWS_FILE,
            "shapes": [list(shape) for shape in shapes],
            "coarse_ratio": ratio,
            "priors": spec.as_dict(),
            "why": "each photo is stretched to the listed input nearest its own aspect (the first for 4:3), "
            "and only the priors that pass the score floor are decoded; both files are model.onnx and "
            "coarse.onnx cut before their prior decoding, with inputs of any size",
            "cut_max_difference": max(differences),
        }
        fields = manifest.model_dump(exclude={"files", "schema_version", "metrics"})
        fields |= {"version": version, "hyperparameters": hyperparameters, "gallery": manifest.gallery}
        fields["provenance"] = manifest.provenance.model_copy(
            update={
                "method": f"{manifest.provenance.method}; {manifest.name}/{manifest.version} with view graphs "
                "added (the same nodes and weights, cut before the prior decoding)",
                "command": command,
                "commit": git_commit(),
                "created": datetime.now(UTC),
            }
        )
        written = pack_artifact(folder, **fields)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(folder, out)
    return written
