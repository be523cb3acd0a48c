"""The untrained starter style artifact is small, self-describing and loads back."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from models.artifact import load_artifact
from models.style.nst import EncoderFeatures, NeuralStyleTransfer
from models.style.predictor import StyleTransfer
from models.style.starter import make_untrained_style


def test_starter_artifact_loads_back_through_load_artifact_and_both_predictors(tmp_path: Path) -> None:
    written = make_untrained_style(tmp_path, widths=(8, 16, 32, 64))
    manifest = load_artifact(tmp_path)
    assert manifest == written
    assert (manifest.task, manifest.architecture) == ("stylize", "adain-vgg19-relu4_1")
    assert manifest.hyperparameters["widths"] == [8, 16, 32, 64]
    assert manifest.defaults == {"alpha": 1.0} and manifest.input is not None and manifest.input.size == 256
    assert manifest.provenance.method == "untrained: random initialisation (seed 0)"
    assert StyleTransfer.from_artifact(tmp_path, manifest, torch.device("cpu")).encoder.widths == (8, 16, 32, 64)
    nst = NeuralStyleTransfer.from_artifact(tmp_path, manifest, torch.device("cpu"))
    assert isinstance(nst.network, EncoderFeatures) and nst.network.encoder.widths == (8, 16, 32, 64)


def test_default_starter_is_float16_and_a_few_megabytes(tmp_path: Path) -> None:
    manifest = make_untrained_style(tmp_path)
    assert {entry.path for entry in manifest.files} == {"encoder.safetensors", "decoder.safetensors"}
    assert sum(entry.size for entry in manifest.files) < 8 * 1024 * 1024
    assert all(t.dtype == torch.float16 for t in load_file(str(tmp_path / "encoder.safetensors")).values())


def test_the_same_seed_gives_the_same_weights(tmp_path: Path) -> None:
    first = make_untrained_style(tmp_path / "a", widths=(8, 16, 32, 64), seed=3)
    second = make_untrained_style(tmp_path / "b", widths=(8, 16, 32, 64), seed=3)
    other = make_untrained_style(tmp_path / "c", widths=(8, 16, 32, 64), seed=4)
    assert [f.sha256 for f in first.files] == [f.sha256 for f in second.files] != [f.sha256 for f in other.files]
