"""Export an artifact's networks to ONNX, next to its weights, and re-pack its manifest.

- detector -> ``model.onnx``: the fused YOLO network, (B, 3, H, W) float32 in [0, 1] -> the decoded
  head (B, 4 + nc, A); B, H and W dynamic (sides multiples of the stride);
- classifier -> ``model.onnx``: (B, 3, S, S) normalised crops -> (B, num_classes) logits; B dynamic;
- style -> ``encoder.onnx`` (B, 3, H, W) -> relu4_1 features and ``decoder.onnx`` features -> (B, 3, H, W),
  B, H and W dynamic (image sides multiples of 8); the AdaIN math stays outside, in numpy;
- embed -> ``resnet.onnx``: (B, 3, 150, 150) aligned RGB chips in [0, 255] -> (B, 128) raw descriptors;
  B dynamic; landmarks, alignment and normalisation stay outside, in numpy.

The exporter is ``torch.onnx.export`` with ``dynamo=True`` (torch.export + onnxscript), weights inside the
file, stored as float16 and computed in float32 (``models.onnx_weights``: half the size, no slower). Each
export is checked against the torch network on its example before the manifest lists it. The manifest keeps
its name, version, provenance and metrics; ``files`` gains the ONNX files and ``hyperparameters["onnx"]``
records the opset and the exporter's versions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from torch.export import Dim

from models.artifact import ArtifactError, Manifest, file_entry, load_artifact, write_manifest
from models.detector.rfb import ARCHITECTURE as RFB_ARCHITECTURE
from models.onnx_weights import store_weights_as_fp16, uses_fp16_storage

OPSET = 18
CPU = torch.device("cpu")
MAX_BATCH = 1024
# Largest side exported, in units of the smallest side step (the stride, or 8 for style): 8192 pixels.
MAX_STEPS = 1024
# Outputs of the exported graph may differ from torch's by float rounding only.
TOLERANCE = 1e-3
Exporter = Callable[[Path, Manifest], tuple[list[str], dict[str, Any]]]


def export_artifact(folder: Path) -> Manifest:
    """Add ONNX files to the local artifact in ``folder`` and re-pack its manifest; returns the new manifest."""
    manifest = load_artifact(folder)
    if manifest.architecture in SHIPPED_AS_ONNX:
        return manifest  # an imported ONNX network (the RFB detector): its model.onnx is the artifact itself
    exporter = EXPORTERS.get(manifest.task)
    if exporter is None:
        raise ArtifactError(f"{manifest.name}/{manifest.version}: a {manifest.task!r} artifact has no network")
    written, details = exporter(folder, manifest)
    return repack(folder, manifest, written, {**exporter_versions(folder / written[0]), **details})


def repack(folder: Path, manifest: Manifest, written: list[str], details: dict[str, Any]) -> Manifest:
    """The manifest with ``written`` listed (replacing older entries) and ``details`` as ``hyperparameters.onnx``."""
    entries = [entry for entry in manifest.files if entry.path not in written]
    entries += [file_entry(folder / path) for path in written]
    hyperparameters = {**manifest.hyperparameters, "onnx": details}
    write_manifest(folder, manifest.model_copy(update={"files": entries, "hyperparameters": hyperparameters}))
    return load_artifact(folder)  # validated and verified, like any artifact


def exporter_versions(path: Path) -> dict[str, Any]:
    import onnx
    import onnxscript

    model = onnx.load(str(path), load_external_data=False)
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    return {
        "opset": int(opset),
        "exporter": "torch.onnx.export(dynamo=True)",
        "weights": "float16 storage, float32 compute" if uses_fp16_storage(path) else "float32",
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
    }


def export_network(
    module: torch.nn.Module, example: torch.Tensor, path: Path, names: tuple[str, str], dims: dict[int, Any]
) -> None:
    """Export ``module`` (one tensor in, one out) with the dynamic ``dims`` of its input, then check it."""
    export_graph(module, (example,), path, ((names[0],), (names[1],)), (dims,))


def export_graph(
    module: torch.nn.Module,
    examples: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[Sequence[str], Sequence[str]],
    dims: tuple[dict[int, Any], ...],
) -> None:
    """Export ``module`` (tensors in, a tensor or a tuple out; ``names``: inputs', outputs') with each input's
    dynamic ``dims``, then check it."""
    torch.onnx.export(
        module,
        examples,
        str(path),
        input_names=list(names[0]),
        output_names=list(names[1]),
        opset_version=OPSET,
        dynamo=True,
        external_data=False,  # one self-contained file per network, hashed in the manifest
        dynamic_shapes=dims,
        verbose=False,
    )
    check_export(module, examples, path)
    exact = path.read_bytes()
    store_weights_as_fp16(path)
    try:
        check_export(module, examples, path)  # the file as shipped, float16-stored weights and all
    except ArtifactError:
        path.write_bytes(exact)  # a network float16 weights cannot hold keeps float32 ones


def check_export(module: torch.nn.Module, examples: tuple[torch.Tensor, ...], path: Path) -> None:
    """Refuse an exported graph whose first output on ``examples`` differs from the torch module's."""
    import onnxruntime as ort

    with torch.inference_mode():
        expected = module(*examples)
    expected = (expected[0] if isinstance(expected, tuple | list) else expected).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {node.name: example.numpy() for node, example in zip(session.get_inputs(), examples, strict=True)}
    got = session.run(None, feed)[0]
    error = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not error <= TOLERANCE * (1 + float(np.abs(expected).max())):
        path.unlink()
        raise ArtifactError(f"{path.name}: the exported graph differs from torch by {error:.3g}")


def batch_dim() -> Dim:
    return Dim("batch", min=1, max=MAX_BATCH)


def export_detector(folder: Path, manifest: Manifest) -> tuple[list[str], dict[str, Any]]:
    from models.detector.network import prepare_for_export
    from models.detector.predictor import FaceDetector
    from models.detector.types import ONNX_FILE

    detector = FaceDetector.from_artifact(folder, manifest, CPU)
    network, stride = prepare_for_export(detector.network), detector.stride
    # Distinct sides and a batch of 2, so no size is specialised; sides stay multiples of the stride,
    # where the neck's upsampled and strided maps line up.
    example = torch.rand(2, 3, 2 * stride, 3 * stride)
    dims = {
        0: batch_dim(),
        2: stride * Dim("rows", min=1, max=MAX_STEPS),
        3: stride * Dim("cols", min=1, max=MAX_STEPS),
    }
    with warnings.catch_warnings():
        # The head caches its anchor grid in attributes; with dynamic=True the graph recomputes it anyway.
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
        export_network(network, example, folder / ONNX_FILE, ("images", "predictions"), dims)
    return [ONNX_FILE], {
        "stride": stride,
        "input": "images (B, 3, H, W) float32 in [0, 1], H and W multiples of stride",
    }


def export_classifier(folder: Path, manifest: Manifest) -> tuple[list[str], dict[str, Any]]:
    from models.classifier.predictor import FaceClassifier
    from models.classifier.types import ONNX_FILE

    classifier = FaceClassifier.from_artifact(folder, manifest, CPU)
    size = classifier.input_size
    export_network(
        classifier.network, torch.rand(2, 3, size, size), folder / ONNX_FILE, ("crops", "logits"), {0: batch_dim()}
    )
    return [ONNX_FILE], {"input": f"crops (B, 3, {size}, {size}) float32, normalised", "output": "logits"}


def export_style(folder: Path, manifest: Manifest) -> tuple[list[str], dict[str, Any]]:
    from models.style.network import Decoder
    from models.style.own_manner import CONTENT_MEASURE_ONNX, REFERENCE_DECODER
    from models.style.predictor import StyleTransfer, content_measure, load_frozen
    from models.style.sizing import MIN_SIDE, SIDE_MULTIPLE
    from models.style.types import DECODER_ONNX, ENCODER_ONNX, MATCHING_DECODER_ONNX, widths_from_manifest

    style = StyleTransfer.from_artifact(folder, manifest, CPU)
    image = torch.rand(2, 3, 6 * SIDE_MULTIPLE, 5 * SIDE_MULTIPLE)  # (2, 3, 48, 40)
    steps = {"min": MIN_SIDE // SIDE_MULTIPLE, "max": MAX_STEPS}
    image_dims = {0: batch_dim(), 2: SIDE_MULTIPLE * Dim("rows", **steps), 3: SIDE_MULTIPLE * Dim("cols", **steps)}
    export_network(style.encoder, image, folder / ENCODER_ONNX, ("image", "features"), image_dims)
    with torch.inference_mode():
        features = style.encoder(image).clone()  # (2, C4, 6, 5)
    feature_dims = {0: batch_dim(), 2: Dim("feature_rows", **steps), 3: Dim("feature_cols", **steps)}
    export_network(style.decoder, features, folder / DECODER_ONNX, ("features", "image"), feature_dims)
    details = {"input": "image (B, 3, H, W) float32 in [0, 1], H and W multiples of 8"}
    if style.matching is None:
        return [ENCODER_ONNX, DECODER_ONNX], details
    # decoder-side matching (models.style.matching): the targets and the strength are inputs too
    batch = feature_dims[0]
    with torch.inference_mode():  # targets a painting would set: the other example's own decoder statistics
        means, stds = (stats.flip(0).clone() for stats in style.matching.statistics(features))
    examples = (features, means, stds, torch.tensor([[0.5], [1.0]]))
    names = ("features", "means", "stds", "strength"), ("image", "own_means", "own_stds")
    dims = (feature_dims, {0: batch}, {0: batch}, {0: batch})
    export_graph(style.matching, examples, folder / MATCHING_DECODER_ONNX, names, dims)
    matching = "features, means, stds, strength -> image, own_means, own_stds"
    files, details = [ENCODER_ONNX, DECODER_ONNX, MATCHING_DECODER_ONNX], details | {"matching_decoder": matching}
    if style.painting_manners is None:
        return files, details
    # each painting's own manner (models.style.own_manner) measures against plain AdaIN's decoder
    reference = load_frozen(
        Decoder(widths_from_manifest(manifest)), folder, manifest, f"{REFERENCE_DECODER}.safetensors", CPU
    )
    export_network(reference, features, folder / f"{REFERENCE_DECODER}.onnx", ("features", "image"), feature_dims)
    measure = content_measure(folder, manifest, CPU)
    export_network(measure, image, folder / CONTENT_MEASURE_ONNX, ("image", "features"), image_dims)
    return [*files, f"{REFERENCE_DECODER}.onnx", CONTENT_MEASURE_ONNX], details


SHIPPED_AS_ONNX = {RFB_ARCHITECTURE}  # imported as ONNX: nothing to export


def export_embedder(folder: Path, manifest: Manifest) -> tuple[list[str], dict[str, Any]]:
    from models.identity.predictor import FaceEmbedder
    from models.identity.types import ONNX_FILE

    network = FaceEmbedder.from_artifact(folder, manifest, CPU).network
    chips = torch.rand(2, 3, 150, 150) * 255
    export_network(network, chips, folder / ONNX_FILE, ("chips", "descriptors"), {0: batch_dim()})
    return [ONNX_FILE], {"input": "chips (B, 3, 150, 150) float32 RGB in [0, 255]", "output": "raw descriptors"}


EXPORTERS: dict[str, Exporter] = {
    "detect": export_detector,
    "classify": export_classifier,
    "stylize": export_style,
    "embed": export_embedder,
}


def export_command(
    folder: Annotated[
        Path, typer.Argument(help="A local artifact folder (manifest.json and weights)", file_okay=False, exists=True)
    ],
) -> None:
    """Add ONNX files to a local artifact (for DEEPCANVAS_*_BACKEND=onnx) and re-pack its manifest."""
    try:
        manifest = export_artifact(folder)
    except ArtifactError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    onnx_files = [entry.path for entry in manifest.files if entry.path.endswith(".onnx")]
    opset = manifest.hyperparameters.get("onnx", {}).get("opset", "as imported")
    typer.echo(f"exported {manifest.name}/{manifest.version}: {', '.join(onnx_files)} (opset {opset})")
