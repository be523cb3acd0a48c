"""The perceptual loss network loads both VGG19 layouts, stays frozen, and measures the AdaIN losses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from models.style.loss_network import (
    COMPRESSED_AUX_CONVS,
    COMPRESSED_DECODER_CONVS,
    COMPRESSED_ENCODER_CONVS,
    content_loss,
    decoder_from_state,
    load_loss_network,
    style_loss,
)
from models.style.network import Decoder, VGGEncoder
from models.style.starter import he_initialised

SLIM = (4, 8, 16, 32)
AUX = (8, 16, 32, 64)  # stands in for VGG19's (64, 128, 256, 512)
CPU = torch.device("cpu")


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Conv2d)]


def _named(names: tuple[str, ...], convs: list[nn.Conv2d]) -> dict[str, torch.Tensor]:
    state = {}
    for name, conv in zip(names, convs, strict=True):
        assert conv.bias is not None
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight.detach(), conv.bias.detach()
    return state


def _fake_compressed_encoder(path: Path) -> tuple[VGGEncoder, list[nn.Conv2d]]:
    """A compressed-VGG19 file (``{"epoch", "model"}``, conv names and aux heads) of slim random weights."""
    torch.manual_seed(0)
    encoder = he_initialised(VGGEncoder(SLIM))
    heads = [nn.Conv2d(w, a, (1, 1)) for w, a in zip(SLIM, AUX, strict=True)]
    state = _named(COMPRESSED_ENCODER_CONVS, _convs(encoder)) | _named(COMPRESSED_AUX_CONVS, heads)
    torch.save({"epoch": 3, "model": state}, path)
    return encoder, heads


@pytest.fixture
def image() -> torch.Tensor:
    return torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(1))


def test_a_compressed_checkpoint_gives_relu_aux_features_of_the_vgg19_widths(
    tmp_path: Path, image: torch.Tensor
) -> None:
    encoder, heads = _fake_compressed_encoder(tmp_path / "encoder.pth")
    network = load_loss_network(tmp_path / "encoder.pth", CPU)
    with torch.no_grad():
        features = network(image)
        expected = [torch.relu(h(f)) for h, f in zip(heads, encoder.encode_with_intermediate(image), strict=True)]
    assert network.feature_widths == AUX
    assert [tuple(f.shape) for f in features] == [(2, a, 32 // 2**i, 24 // 2**i) for i, a in enumerate(AUX)]
    for feature, reference in zip(features, expected, strict=True):
        torch.testing.assert_close(feature, reference)


def test_a_vgg_normalised_state_dict_is_used_up_to_relu4_1(tmp_path: Path, image: torch.Tensor) -> None:
    encoder = he_initialised(VGGEncoder(SLIM))
    beyond = {"32.weight": torch.rand(SLIM[3], SLIM[3], 3, 3), "32.bias": torch.rand(SLIM[3])}  # relu4_2 onwards
    torch.save(encoder.state_dict() | beyond, tmp_path / "vgg_normalised.pth")
    network = load_loss_network(tmp_path / "vgg_normalised.pth", CPU)
    with torch.no_grad():
        features, expected = network(image), encoder.encode_with_intermediate(image)
    assert network.feature_widths == SLIM and "vgg_normalised" in network.source
    for feature, reference in zip(features, expected, strict=True):
        torch.testing.assert_close(feature, reference)


def test_the_loss_network_is_frozen_but_passes_gradients_to_its_input(tmp_path: Path, image: torch.Tensor) -> None:
    _fake_compressed_encoder(tmp_path / "encoder.pth")
    network = load_loss_network(tmp_path / "encoder.pth", CPU)
    nn.Sequential(network).train()  # a parent switching to training mode must not switch it
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    image.requires_grad_(True)
    network(image)[-1].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in network.parameters())


def test_a_compressed_decoder_maps_onto_our_decoder_layout() -> None:
    decoder = he_initialised(Decoder(SLIM))
    loaded = decoder_from_state(_named(COMPRESSED_DECODER_CONVS, _convs(decoder)))
    features = torch.rand(1, SLIM[3], 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(features), decoder(features))
    assert loaded.widths == SLIM


def test_a_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a VGG encoder"):
        load_loss_network(tmp_path / "other.pth", CPU)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        load_loss_network(tmp_path / "list.pth", CPU)


def test_style_loss_of_features_against_themselves_is_zero_and_positive_otherwise() -> None:
    generator = torch.Generator().manual_seed(2)
    feats = [torch.rand(2, 4, 8, 8, generator=generator) for _ in range(3)]
    other = [f * 2 + 1 for f in feats]
    assert style_loss(feats, feats).item() == 0.0
    assert style_loss(other, feats).item() > 0.0
    # only statistics count: shuffling pixels changes nothing
    shuffled = [f.flatten(2)[:, :, torch.randperm(64, generator=generator)].view_as(f) for f in feats]
    assert style_loss(shuffled, feats).item() == pytest.approx(0.0, abs=1e-10)


def test_content_loss_is_the_mean_squared_error_to_the_target() -> None:
    target = torch.zeros(1, 2, 2, 2)
    assert content_loss(target + 3.0, target).item() == pytest.approx(9.0)
    assert content_loss(target, target).item() == 0.0


@pytest.mark.shared
def test_the_shared_compressed_vgg19_gives_vgg19_width_features(shared_dir: Path) -> None:
    path = shared_dir / "data" / "weights" / "vgg19-16x-compressed" / "encoder_relu4_1.pth"
    network = load_loss_network(path, CPU)
    with torch.no_grad():
        features = network(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)))
    assert network.feature_widths == (64, 128, 256, 512) and network.encoder.widths == (16, 32, 64, 128)
    assert all(torch.isfinite(f).all() and (f >= 0).all() and f.abs().sum() > 0 for f in features)
