"""Importing the AdaIN release: files of the release's key layout round-trip into a served artifact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from models.artifact import ArtifactError, load_artifact
from models.style import commands
from models.style.adain import adaptive_instance_normalization
from models.style.importer import import_adain
from models.style.network import Decoder, VGGEncoder
from models.style.predictor import StyleTransfer
from models.style.starter import he_initialised

CPU = torch.device("cpu")
# vgg_normalised.pth continues past relu4_1 (layer 30) with these convs, up to relu5_4.
CONVS_AFTER_RELU4_1 = (32, 35, 38, 42, 45, 48, 51)


def _fake_release(folder: Path, widths: tuple[int, int, int, int]) -> tuple[VGGEncoder, Decoder]:
    """``vgg_normalised.pth`` (all of VGG19's keys, random values) and ``decoder.pth`` of ``widths``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(sum(widths))
    encoder, decoder = he_initialised(VGGEncoder(widths)), he_initialised(Decoder(widths))
    vgg = dict(encoder.state_dict())
    for index in CONVS_AFTER_RELU4_1:
        vgg[f"{index}.weight"] = torch.randn(widths[3], widths[3], 3, 3)
        vgg[f"{index}.bias"] = torch.randn(widths[3])
    torch.save(vgg, folder / "vgg_normalised.pth")
    torch.save(decoder.state_dict(), folder / "decoder.pth")
    return encoder.eval(), decoder.eval()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_imported_artifact_stylizes_exactly_as_the_release_modules(tmp_path: Path) -> None:
    encoder, decoder = _fake_release(tmp_path / "release", (8, 16, 32, 64))
    manifest = import_adain(
        tmp_path / "release" / "vgg_normalised.pth",
        tmp_path / "release" / "decoder.pth",
        tmp_path / "adain",
        "adain",
        "release-1",
        expected_sha256=None,
    )
    transfer = StyleTransfer.from_artifact(tmp_path / "adain", load_artifact(tmp_path / "adain"), CPU).eval()
    generator = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 32, 40, generator=generator), torch.rand(1, 3, 24, 24, generator=generator)
    with torch.no_grad():
        expected = decoder(adaptive_instance_normalization(encoder(content), encoder(style))).clamp(0, 1)
        torch.testing.assert_close(transfer.stylize(content, [style], [1.0], 1.0), expected, rtol=0, atol=0)
    assert manifest.name == "adain" and manifest.version == "release-1"
    assert manifest.hyperparameters["widths"] == [8, 16, 32, 64]
    assert manifest.provenance.method.startswith("imported:")


def test_the_release_shapes_give_widths_64_128_256_512(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release", (64, 128, 256, 512))
    manifest = import_adain(
        tmp_path / "release" / "vgg_normalised.pth",
        tmp_path / "release" / "decoder.pth",
        tmp_path / "adain",
        "adain",
        "v1",
        None,
        half=True,
    )
    assert manifest.hyperparameters["widths"] == [64, 128, 256, 512]
    assert manifest.file("encoder.safetensors").size < 8_000_000  # float16 of ~3.5 M parameters


def test_matching_digests_are_accepted_and_recorded(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release", (4, 8, 16, 32))
    vgg, decoder = tmp_path / "release" / "vgg_normalised.pth", tmp_path / "release" / "decoder.pth"
    digests = {"vgg": _sha256(vgg).upper(), "decoder": _sha256(decoder)}
    manifest = import_adain(vgg, decoder, tmp_path / "adain", "adain", "v1", digests)
    assert manifest.hyperparameters["source_sha256"] == {"vgg": _sha256(vgg), "decoder": _sha256(decoder)}


def test_a_file_with_another_digest_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    _fake_release(tmp_path / "release", (4, 8, 16, 32))
    vgg, decoder = tmp_path / "release" / "vgg_normalised.pth", tmp_path / "release" / "decoder.pth"
    with pytest.raises(ArtifactError, match="sha256"):
        import_adain(vgg, decoder, tmp_path / "adain", "adain", "v1", {"decoder": "0" * 64})
    with pytest.raises(ValueError, match="keys must be among"):
        import_adain(vgg, decoder, tmp_path / "adain", "adain", "v1", {"encoder": _sha256(vgg)})
    assert not (tmp_path / "adain").exists()


def test_mismatched_encoder_and_decoder_widths_are_refused(tmp_path: Path) -> None:
    _fake_release(tmp_path / "small", (4, 8, 16, 32))
    _fake_release(tmp_path / "other", (4, 8, 16, 16))
    with pytest.raises(ValueError, match="widths"):
        import_adain(
            tmp_path / "small" / "vgg_normalised.pth",
            tmp_path / "other" / "decoder.pth",
            tmp_path / "adain",
            "adain",
            "v1",
            None,
        )


def test_the_import_command_refuses_a_wrong_digest_and_imports_a_right_one(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(commands.import_adain)
    _fake_release(tmp_path / "release", (4, 8, 16, 32))
    files = [str(tmp_path / "release" / name) for name in ("vgg_normalised.pth", "decoder.pth")]
    refused = CliRunner().invoke(app, [*files, str(tmp_path / "adain"), "--vgg-sha256", "0" * 64])
    assert refused.exit_code != 0 and not (tmp_path / "adain").exists()
    digest = _sha256(tmp_path / "release" / "vgg_normalised.pth")
    result = CliRunner().invoke(app, [*files, str(tmp_path / "adain"), "--vgg-sha256", digest, "--version", "r1"])
    assert result.exit_code == 0, result.output
    assert load_artifact(tmp_path / "adain").version == "r1"
