"""Decoder-side matching (models/style/matching.py): the module's math, the artifact entry, both predictors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from app.cli import _register_model_commands, cli
from models.artifact import ArtifactError, load_artifact, repack_artifact
from models.onnx_backend import Runtime
from models.provenance import git_commit, invoked_command
from models.style.adain import calc_mean_std
from models.style.importer import attach_matching
from models.style.matching import MatchingDecoder, relu_layers
from models.style.network import Decoder
from models.style.onnx_predictor import OnnxStyleTransfer
from models.style.predictor import StyleTransfer, StylizeRequest
from models.style.types import MATCHING_KEY, matching_settings
from tests.models.conftest import ExportedStore, picture

SLIM = (8, 16, 32, 64)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def matching() -> MatchingDecoder:
    torch.manual_seed(0)
    decoder = Decoder(SLIM).eval()
    return MatchingDecoder(decoder, relu_layers(decoder)).eval()


def features(seed: int) -> torch.Tensor:
    return torch.rand(2, SLIM[3], 5, 6, generator=torch.Generator().manual_seed(seed)) * 2


def test_strength_zero_decodes_plainly_and_reports_the_decodings_statistics(matching: MatchingDecoder) -> None:
    x = features(1)
    with torch.inference_mode():
        image, means, stds = matching(
            x, torch.rand(2, matching.width), torch.rand(2, matching.width), torch.zeros(2, 1)
        )
        plain = matching.decoder(x).clamp(0.0, 1.0)
        first = torch.nn.Sequential(*list(matching.decoder)[: matching.layers[0] + 1])(x)  # the first matched ReLU
    assert torch.allclose(image, plain, atol=1e-6)
    assert means.shape == stds.shape == (2, matching.width) and matching.width == sum(matching.channels)
    mean, std = calc_mean_std(first)
    assert torch.allclose(means[:, : matching.channels[0]], mean.flatten(1), atol=1e-6)
    assert torch.allclose(stds[:, : matching.channels[0]], std.flatten(1), atol=1e-6)


def test_matching_a_decoding_to_its_own_statistics_changes_nothing(matching: MatchingDecoder) -> None:
    x = features(2)
    with torch.inference_mode():
        means, stds = matching.statistics(x)
        image = matching(x, means, stds, torch.ones(2, 1))[0]
        assert torch.allclose(image, matching.decoder(x).clamp(0.0, 1.0), atol=1e-4)


def test_full_strength_gives_the_first_matched_layer_the_targets(
    matching: MatchingDecoder,
) -> None:
    x, painting = features(3), features(4) * 3
    captured: list[torch.Tensor] = []
    hook = matching.decoder[matching.layers[0] + 1].register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    try:
        with torch.inference_mode():
            means, stds = matching.statistics(painting)
            captured.clear()
            image, _, own_stds = matching(x, means, stds, torch.ones(2, 1))
            plain = matching.decoder(x).clamp(0.0, 1.0)
    finally:
        hook.remove()
    mean, std = calc_mean_std(captured[0])
    count = matching.channels[0]
    alive = own_stds[:, :count] > 0.01  # a channel the ReLU zeroed everywhere stays flat, as in AdaIN
    assert alive.float().mean() > 0.5
    assert torch.allclose(mean.flatten(1)[alive], means[:, :count][alive], atol=1e-4)
    # both stds carry the eps of calc_mean_std: equal to a few parts in a thousand
    assert torch.allclose(std.flatten(1)[alive], stds[:, :count][alive], rtol=1e-2, atol=2e-3)
    assert (captured[0] - captured[1]).abs().mean() > 1e-2  # the plain decoding's activations were elsewhere
    assert image.shape == plain.shape


def test_only_relus_can_be_matched() -> None:
    decoder = Decoder(SLIM)
    with pytest.raises(AssertionError, match="ReLU"):
        MatchingDecoder(decoder, [1])  # a convolution


@pytest.fixture(scope="module")
def matched_folder(exported_store: ExportedStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("matched") / "adain"
    shutil.copytree(exported_store.folder("adain"), folder)
    attach_matching(folder, 0.7)
    return folder


def test_the_artifact_records_the_matching_and_its_decoder_onnx_takes_the_targets(matched_folder: Path) -> None:
    import onnx

    manifest = load_artifact(matched_folder)
    settings = matching_settings(manifest)
    assert settings is not None and settings.strength == 0.7
    decoder = Decoder(tuple(manifest.hyperparameters["widths"]))
    assert settings.layers == relu_layers(decoder) and settings.width == sum(settings.channels)
    graph = onnx.load(str(matched_folder / "matching_decoder.onnx")).graph
    assert [node.name for node in graph.input] == ["features", "means", "stds", "strength"]
    assert [node.name for node in graph.output] == ["image", "own_means", "own_stds"]
    assert [node.name for node in onnx.load(str(matched_folder / "decoder.onnx")).graph.input] == ["features"]


@pytest.mark.parametrize(
    "entry",
    [{"layers": [2], "strength": 1.5, "channels": [8]}, {"layers": [2, 6], "strength": 0.5, "channels": [8]}, "x"],
    ids=["strength-above-one", "channels-missing", "not-a-mapping"],
)
def test_a_malformed_matching_entry_is_an_artifact_error(matched_folder: Path, tmp_path: Path, entry: object) -> None:
    folder = tmp_path / "adain"
    shutil.copytree(matched_folder, folder)
    manifest = load_artifact(folder)
    repack_artifact(folder, hyperparameters=manifest.hyperparameters | {MATCHING_KEY: entry})
    with pytest.raises(ArtifactError, match=MATCHING_KEY):
        matching_settings(load_artifact(folder))


@pytest.mark.parametrize("runtime", [Runtime("onnxruntime"), Runtime("openvino", precision="f32")], ids=["ort", "ov"])
@pytest.mark.parametrize(
    ("styles", "weights", "alpha"),
    [((1,), (1.0,), 1.0), ((1, 2), (0.7, 0.3), 0.6)],
    ids=["one-style", "two-styles-lower-alpha"],
)
def test_onnx_and_torch_paint_alike_with_matching(
    matched_folder: Path, runtime: Runtime, styles: tuple[int, ...], weights: tuple[float, ...], alpha: float
) -> None:
    manifest = load_artifact(matched_folder)
    style_images = {1: picture((64, 48), 11), 2: picture((40, 72), 12)}
    request = StylizeRequest(
        picture((120, 80), 10), tuple(style_images[s] for s in styles), weights, alpha, False, max_side=96
    )
    onnx_predictor = OnnxStyleTransfer.from_artifact(matched_folder, manifest, "cpu", runtime)
    [ours] = onnx_predictor.predict([request])
    [theirs] = StyleTransfer.from_artifact(matched_folder, manifest, CPU).predict([request])
    difference = np.abs(np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64))
    assert difference.mean() < 1.0  # grey levels out of 255
    assert len(onnx_predictor.decoder_statistics) == len(styles)  # each style's decoder statistics are cached


def test_matching_paints_differently_and_alpha_zero_still_reconstructs(
    exported_store: ExportedStore, matched_folder: Path
) -> None:
    plain_folder = exported_store.folder("adain")
    plain = StyleTransfer.from_artifact(plain_folder, load_artifact(plain_folder), CPU)
    matched = StyleTransfer.from_artifact(matched_folder, load_artifact(matched_folder), CPU)
    content, style = picture((96, 64), 20), picture((64, 64), 21)
    outputs = {}
    for alpha in (0.0, 1.0):
        request = StylizeRequest(content, (style,), (1.0,), alpha, False, max_side=96)
        outputs[alpha] = [np.asarray(p.predict([request])[0], dtype=np.float64) for p in (plain, matched)]
    assert np.abs(outputs[0.0][0] - outputs[0.0][1]).max() <= 1.0  # alpha 0: the content's reconstruction
    assert np.abs(outputs[1.0][0] - outputs[1.0][1]).mean() > 1.0


def test_the_match_decoder_command_writes_a_new_version_and_refuses_a_layer_that_is_no_relu(
    exported_store: ExportedStore, tmp_path: Path
) -> None:
    source = exported_store.folder("adain")
    _register_model_commands()
    runner = CliRunner()
    refused = runner.invoke(
        cli,
        [
            "models",
            "match-decoder",
            str(source),
            "--strength",
            "0.5",
            "--layers",
            "1",
            "--out",
            str(tmp_path / "bad"),
            "--version",
            "bad",
        ],
    )
    assert refused.exit_code == 2 and "ReLU" in refused.output
    assert not (tmp_path / "bad").exists()  # refused before anything was copied
    done = runner.invoke(
        cli,
        ["models", "match-decoder", str(source), "--strength", "0.5", "--out", str(tmp_path / "v9"), "--version", "v9"],
    )
    assert done.exit_code == 0, done.output
    manifest = load_artifact(tmp_path / "v9")
    assert manifest.version == "v9" and manifest.hyperparameters[MATCHING_KEY]["strength"] == 0.5
    assert load_artifact(source).hyperparameters.get(MATCHING_KEY) is None  # the source is left as it was
    made = manifest.provenance  # the copy's own command, commit and time; the method keeps the source's story
    assert made.command == invoked_command() and made.commit == git_commit()
    assert made.created > load_artifact(source).provenance.created
    assert made.method.startswith(load_artifact(source).provenance.method)


def test_manner_zero_decodes_plainly_and_the_default_comes_from_the_artifact(
    exported_store: ExportedStore, matched_folder: Path
) -> None:
    plain_folder = exported_store.folder("adain")
    plain = OnnxStyleTransfer.from_artifact(plain_folder, load_artifact(plain_folder), "cpu", Runtime())
    matched = OnnxStyleTransfer.from_artifact(matched_folder, load_artifact(matched_folder), "cpu", Runtime())
    content, style = picture((96, 64), 30), picture((64, 64), 31)

    def paint(predictor: OnnxStyleTransfer, manner: float | None) -> np.ndarray:
        request = StylizeRequest(content, (style,), (1.0,), 1.0, False, max_side=96, manner=manner)
        return np.asarray(predictor.predict([request])[0], dtype=np.float64)

    assert np.array_equal(paint(matched, 0.0), paint(plain, None))
    assert len(matched.decoder_statistics) == 0  # manner 0 never computes the painting's decoder statistics
    assert np.array_equal(paint(matched, None), paint(matched, 0.7))  # the artifact's default
    assert np.abs(paint(matched, 1.0) - paint(matched, 0.7)).mean() > 0.1


def test_a_plain_artifact_refuses_a_manner(exported_store: ExportedStore) -> None:
    folder = exported_store.folder("adain")
    predictor = StyleTransfer.from_artifact(folder, load_artifact(folder), CPU)
    request = StylizeRequest(picture((64, 64), 1), (picture((64, 64), 2),), (1.0,), 1.0, False, 64, manner=0.5)
    with pytest.raises(AssertionError, match="does not match"):
        predictor.predict([request])
