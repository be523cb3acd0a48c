"""The encoder and decoder keep the original AdaIN release's layer layout, at any width."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from models.style.images import image_to_tensor, resize_for_network
from models.style.network import Decoder, VGGEncoder

SLIM = (8, 16, 32, 64)
# naoto0804/pytorch-AdaIN: vgg_normalised.pth truncated after relu4_1, and decoder.pth.
ORIGINAL_ENCODER_WEIGHTS: dict[str, tuple[int, ...]] = {
    "0.weight": (3, 3, 1, 1),
    "2.weight": (64, 3, 3, 3),
    "5.weight": (64, 64, 3, 3),
    "9.weight": (128, 64, 3, 3),
    "12.weight": (128, 128, 3, 3),
    "16.weight": (256, 128, 3, 3),
    "19.weight": (256, 256, 3, 3),
    "22.weight": (256, 256, 3, 3),
    "25.weight": (256, 256, 3, 3),
    "29.weight": (512, 256, 3, 3),
}
ORIGINAL_DECODER_WEIGHTS: dict[str, tuple[int, ...]] = {
    "1.weight": (256, 512, 3, 3),
    "5.weight": (256, 256, 3, 3),
    "8.weight": (256, 256, 3, 3),
    "11.weight": (256, 256, 3, 3),
    "14.weight": (128, 256, 3, 3),
    "18.weight": (128, 128, 3, 3),
    "21.weight": (64, 128, 3, 3),
    "25.weight": (64, 64, 3, 3),
    "28.weight": (3, 64, 3, 3),
}


def _with_biases(weights: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for key, shape in weights.items():
        shapes[key] = shape
        shapes[key.replace("weight", "bias")] = shape[:1]
    return shapes


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def test_encoder_state_dict_matches_vgg_normalised_up_to_relu4_1() -> None:
    assert _shapes(VGGEncoder()) == _with_biases(ORIGINAL_ENCODER_WEIGHTS)
    assert isinstance(VGGEncoder()[30], torch.nn.ReLU) and len(VGGEncoder()) == 31


def test_decoder_state_dict_matches_the_released_decoder() -> None:
    assert _shapes(Decoder()) == _with_biases(ORIGINAL_DECODER_WEIGHTS)
    assert isinstance(Decoder()[28], torch.nn.Conv2d) and len(Decoder()) == 29  # no ReLU after the last conv


def test_slim_widths_keep_the_same_keys() -> None:
    assert list(VGGEncoder(SLIM).state_dict()) == list(_with_biases(ORIGINAL_ENCODER_WEIGHTS))
    assert list(Decoder(SLIM).state_dict()) == list(_with_biases(ORIGINAL_DECODER_WEIGHTS))
    assert VGGEncoder(SLIM).state_dict()["29.weight"].shape == (64, 32, 3, 3)


@pytest.mark.parametrize("size", [(16, 16), (32, 48), (56, 24)])
def test_decoding_the_encoding_round_trips_sides_that_are_multiples_of_8(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    encoder, decoder = VGGEncoder(SLIM), Decoder(SLIM)
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        features = encoder(image)
        assert features.shape == (2, SLIM[3], size[0] // 8, size[1] // 8)
        assert decoder(features).shape == image.shape


def test_intermediate_features_are_relu_x_1_with_halving_sides_ending_at_forward() -> None:
    encoder = VGGEncoder(SLIM)
    image = torch.rand(1, 3, 40, 32)
    with torch.no_grad():
        features = encoder.encode_with_intermediate(image)
        expected = [(1, width, 40 // 2**i, 32 // 2**i) for i, width in enumerate(SLIM)]
        assert [tuple(f.shape) for f in features] == expected
        assert all((f >= 0).all() for f in features)  # each is taken right after a ReLU
        torch.testing.assert_close(features[-1], encoder(image))


@pytest.mark.shared
def test_compressed_vgg19_loads_into_the_slim_architecture_and_reconstructs_a_portrait(shared_dir: Path) -> None:
    folder = shared_dir / "data" / "weights" / "vgg19-16x-compressed"
    encoder_state = torch.load(folder / "encoder_relu4_1.pth", map_location="cpu", weights_only=True)["model"]
    decoder_state = torch.load(folder / "decoder_relu4_1.pth", map_location="cpu", weights_only=True)["model"]
    encoder_names = ["conv0", "conv11", "conv12", "conv21", "conv22", "conv31", "conv32", "conv33", "conv34", "conv41"]
    decoder_names = ["conv41", "conv34", "conv33", "conv32", "conv31", "conv22", "conv21", "conv12", "conv11"]
    encoder, decoder = VGGEncoder((16, 32, 64, 128)), Decoder((16, 32, 64, 128))
    encoder.load_state_dict(_renamed(encoder_state, encoder_names, ORIGINAL_ENCODER_WEIGHTS))
    decoder.load_state_dict(_renamed(decoder_state, decoder_names, ORIGINAL_DECODER_WEIGHTS))
    with Image.open(shared_dir / "data" / "style-transfer" / "content" / "brad_pitt.jpg") as photo:
        image = image_to_tensor(resize_for_network(photo, 256), torch.device("cpu"))
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(decoder(encoder(image)).clamp(0, 1), image)
    assert error < 0.005  # README measured 0.0016 at 384 px: the layers are wired as the weights expect


def _renamed(
    state: dict[str, torch.Tensor], names: list[str], layout: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    indices = [key.split(".")[0] for key in layout]
    renamed = {}
    for name, index in zip(names, indices, strict=True):
        renamed[f"{index}.weight"] = state[f"{name}.weight"].float()
        renamed[f"{index}.bias"] = state[f"{name}.bias"].float()
    return renamed
