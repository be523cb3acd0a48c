"""The loss network classical NST optimises against: the compressed VGG19 to relu5_1, with its ``_aux`` heads.

The AdaIN encoder stops at relu4_1. Gatys et al. take style from relu1_1…relu5_1 and content from relu4_2,
so NST needs the compressed VGG19's relu5_1 encoder (MingSun-Tse/Collaborative-Distillation, MIT): the AdaIN
encoder's layers, then conv4_2…conv4_4, a pool and conv5_1, plus the 1×1 ``convN1_aux`` heads that map each
slim relu{N}_1 to VGG19's width (64, 128, 256, 512, 512). ``deepcanvas models attach-nst`` writes it into a
style artifact as ``NST_NETWORK_FILE``; the service loads it only from there (the configured store).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from models.artifact import Manifest
from models.style.loss_network import COMPRESSED_ENCODER_CONVS, read_state_dict
from models.style.network import VGGEncoder, _conv_block

NST_NETWORK_FILE = "nst_vgg19.safetensors"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_TAIL_CONVS = ("conv42", "conv43", "conv44", "conv51")
_AUX_CONVS = ("conv11_aux", "conv21_aux", "conv31_aux", "conv41_aux", "conv51_aux")


class NSTNetwork(nn.Module):
    """Features of RGB in [0, 1]: style layers relu1_1…relu5_1 (through the aux heads) and content relu4_2."""

    def __init__(self, widths: tuple[int, int, int, int], fifth: int, aux_widths: tuple[int, ...]) -> None:
        super().__init__()
        self.encoder = VGGEncoder(widths)  # to relu4_1
        w4 = widths[3]
        self.relu4_2 = nn.Sequential(*_conv_block(w4, w4))
        rest = [*_conv_block(w4, w4), *_conv_block(w4, w4), nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)]
        self.relu5_1 = nn.Sequential(*rest, *_conv_block(w4, fifth))
        slim = (*widths, fifth)
        self.heads = nn.ModuleList(nn.Conv2d(s, a, (1, 1)) for s, a in zip(slim, aux_widths, strict=True))
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([relu1_1 … relu5_1] at VGG19's widths, relu4_2 (slim)) for an image (N, 3, H, W)."""
        slim = self.encoder.encode_with_intermediate(image)  # 4 × (N, w_n, H/2^n, W/2^n)
        content = self.relu4_2(slim[-1])  # (N, w4, H/8, W/8)
        slim.append(self.relu5_1(content))  # (N, w5, H/16, W/16)
        # the aux heads were trained with a ReLU after them (loss_network.py)
        return [F.relu(head(feature)) for head, feature in zip(self.heads, slim, strict=True)], content


class ContentMeasure(nn.Module):
    """The features evaluation's content loss compares (``models.style.evaluate``): relu4_1 through the aux head."""

    def __init__(self, network: NSTNetwork) -> None:
        super().__init__()
        self.encoder = network.encoder
        self.head = network.heads[3]
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return F.relu(self.head(self.encoder(image)))  # (N, 512, H/8, W/8)


def nst_network_from_compressed(path: Path) -> NSTNetwork:
    """An ``NSTNetwork`` holding a compressed ``encoder_relu5_1.pth``; ``ValueError`` when it is not one."""
    state = read_state_dict(path)
    names = (*COMPRESSED_ENCODER_CONVS, *_TAIL_CONVS, *_AUX_CONVS)
    missing = [name for name in names if f"{name}.weight" not in state]
    if missing:
        raise ValueError(f"{path.name} is not a compressed VGG19 to relu5_1: no {missing[0]}.weight")
    widths = tuple(state[f"{name}.weight"].shape[0] for name in ("conv11", "conv21", "conv31", "conv41"))
    aux = tuple(state[f"{name}.weight"].shape[0] for name in _AUX_CONVS)
    network = NSTNetwork(widths, state["conv51.weight"].shape[0], aux)  # type: ignore[arg-type]
    ours = [m for m in network.encoder if isinstance(m, nn.Conv2d)]
    ours += [m for m in (*network.relu4_2, *network.relu5_1) if isinstance(m, nn.Conv2d)]
    ours += list(network.heads)  # type: ignore[arg-type]
    for module, name in zip(ours, names, strict=True):
        assert isinstance(module, nn.Conv2d)
        if module.weight.shape != state[f"{name}.weight"].shape:
            raise ValueError(f"{path.name}: {name} has shape {tuple(state[f'{name}.weight'].shape)}")
        module.weight.copy_(state[f"{name}.weight"])
        module.bias.copy_(state[f"{name}.bias"])  # type: ignore[union-attr]
    return network


def nst_network_shape(network: NSTNetwork) -> dict[str, list[int]]:
    """What a manifest records so that loading never guesses shapes."""
    fifth = [m for m in network.relu5_1 if isinstance(m, nn.Conv2d)][-1].out_channels
    aux = [head.out_channels for head in network.heads if isinstance(head, nn.Conv2d)]
    return {"widths": list(network.encoder.widths), "fifth": [fifth], "aux_widths": aux}


def nst_network_from_manifest(manifest: Manifest) -> NSTNetwork | None:
    """An empty ``NSTNetwork`` of the shape the manifest records, or None when the artifact has none."""
    shape = manifest.hyperparameters.get("nst_network")
    if not isinstance(shape, dict):
        return None
    widths = tuple(int(w) for w in shape["widths"])
    return NSTNetwork(widths, int(shape["fifth"][0]), tuple(int(w) for w in shape["aux_widths"]))  # type: ignore[arg-type]
