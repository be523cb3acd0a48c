"""A frozen VGG19-like perceptual loss network, the AdaIN losses it measures, and the VGG weight layouts.

Two files load, told apart by their keys:

- a compressed VGG19 of MingSun-Tse/Collaborative-Distillation (``{"epoch", "model"}``; ``conv0``,
  ``conv11`` … ``conv41`` and the 1×1 ``convN1_aux`` heads that map its slim relu{N}_1 to VGG19's widths);
- the AdaIN authors' ``vgg_normalised.pth`` (an ``nn.Sequential`` state dict, ``"0.weight"`` …), used up to relu4_1.

Either gives [relu1_1, relu2_1, relu3_1, relu4_1] features of VGG19's widths (64, 128, 256, 512).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from models.style.adain import calc_mean_std
from models.style.network import Decoder, VGGEncoder

# The compressed files name their convs; ours are Sequential indices. Same order as our layers.
COMPRESSED_ENCODER_CONVS = (
    *("conv0", "conv11", "conv12", "conv21", "conv22"),
    *("conv31", "conv32", "conv33", "conv34", "conv41"),
)
COMPRESSED_DECODER_CONVS = ("conv41", "conv34", "conv33", "conv32", "conv31", "conv22", "conv21", "conv12", "conv11")
COMPRESSED_AUX_CONVS = ("conv11_aux", "conv21_aux", "conv31_aux", "conv41_aux")
# vgg_normalised.pth keeps all of VGG19; relu4_1 is layer 30, so layers 0..30 are the encoder.
RELU4_1_INDEX = 30
# The first conv of each stage in our Sequentials: its output channels give that stage's width.
_ENCODER_STAGE_CONVS = (2, 9, 16, 29)
_DECODER_STAGE_CONVS = (25, 21, 14, 1)  # input width of these convs, read from dim 1


def _conv_indices(module: nn.Sequential) -> list[int]:
    return [index for index, layer in enumerate(module) if isinstance(layer, nn.Conv2d)]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Float32 tensors of a ``.pth`` file, unwrapping ``{"model": state_dict}``; ``ValueError`` if it is neither."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    return {str(key): value.float() for key, value in payload.items()}


def is_compressed(state: dict[str, torch.Tensor]) -> bool:
    return "conv0.weight" in state and "conv11.weight" in state


def _renamed(state: dict[str, torch.Tensor], names: Sequence[str], indices: Sequence[int]) -> dict[str, torch.Tensor]:
    renamed = {}
    for name, index in zip(names, indices, strict=True):
        for kind in ("weight", "bias"):
            if f"{name}.{kind}" not in state:
                raise ValueError(f"weights lack {name}.{kind}")
            renamed[f"{index}.{kind}"] = state[f"{name}.{kind}"]
    return renamed


def _sequential_prefix(state: dict[str, torch.Tensor], last_index: int) -> dict[str, torch.Tensor]:
    """The entries of an ``nn.Sequential`` state dict whose layer index is <= ``last_index``."""
    prefix = {}
    for key, value in state.items():
        index = key.split(".")[0]
        if index.isdigit() and int(index) <= last_index:
            prefix[key] = value
    return prefix


def _load(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as error:  # missing, unexpected or mis-shaped keys
        raise ValueError(f"{what} weights do not fit the AdaIN layout: {error}") from error


def encoder_from_state(state: dict[str, torch.Tensor]) -> VGGEncoder:
    """Our ``VGGEncoder`` (widths read from the weights) holding a compressed or ``vgg_normalised`` encoder."""
    if is_compressed(state):
        state = _renamed(state, COMPRESSED_ENCODER_CONVS, _conv_indices(VGGEncoder((1, 1, 1, 1))))
    else:
        state = _sequential_prefix(state, RELU4_1_INDEX)
    try:
        widths = [state[f"{index}.weight"].shape[0] for index in _ENCODER_STAGE_CONVS]
    except KeyError as error:
        raise ValueError(f"not a VGG encoder: no {error.args[0]}") from error
    encoder = VGGEncoder(widths)
    _load(encoder, state, "encoder")
    return encoder


def decoder_from_state(state: dict[str, torch.Tensor]) -> Decoder:
    """Our ``Decoder`` (widths read from the weights) holding a compressed or released AdaIN decoder."""
    if "conv41.weight" in state and "conv11.weight" in state:
        state = _renamed(state, COMPRESSED_DECODER_CONVS, _conv_indices(Decoder((1, 1, 1, 1))))
    try:
        widths = [state[f"{index}.weight"].shape[1] for index in _DECODER_STAGE_CONVS]
    except KeyError as error:
        raise ValueError(f"not an AdaIN decoder: no {error.args[0]}") from error
    decoder = Decoder(widths)
    _load(decoder, state, "decoder")
    return decoder


def aux_heads_from_state(state: dict[str, torch.Tensor]) -> nn.ModuleList:
    """The compressed encoder's 1×1 ``convN1_aux`` heads, relu{N}_1 (slim) to VGG19's widths."""
    heads = nn.ModuleList()
    for name in COMPRESSED_AUX_CONVS:
        if f"{name}.weight" not in state:
            raise ValueError(f"compressed encoder weights lack {name}.weight")
        weight = state[f"{name}.weight"]  # (C_vgg, C_slim, 1, 1)
        head = nn.Conv2d(weight.shape[1], weight.shape[0], (1, 1))
        _load(head, {"weight": weight, "bias": state[f"{name}.bias"]}, name)
        heads.append(head)
    return heads


class LossNetwork(nn.Module):
    """Frozen features [relu1_1, relu2_1, relu3_1, relu4_1] of VGG19's widths for RGB images in [0, 1]."""

    def __init__(self, encoder: VGGEncoder, heads: nn.ModuleList | None, source: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = heads
        self.source = source
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LossNetwork:
        # a loss network never trains: keep eval mode even when a parent module calls .train()
        return super().train(False)

    @property
    def feature_widths(self) -> tuple[int, ...]:
        if self.heads is None:
            return self.encoder.widths
        return tuple(head.out_channels for head in self.heads if isinstance(head, nn.Conv2d))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = self.encoder.encode_with_intermediate(image)  # 4 × (N, C_n, H/2^n, W/2^n)
        if self.heads is None:
            return features
        # the aux heads were trained with a ReLU after them, to match VGG19's post-ReLU relu{N}_1
        return [F.relu(head(feature)) for head, feature in zip(self.heads, features, strict=True)]


def load_loss_network(path: Path, device: torch.device) -> LossNetwork:
    """A frozen loss network from a compressed VGG19 (with aux heads) or a ``vgg_normalised.pth`` file."""
    state = read_state_dict(path)
    encoder = encoder_from_state(state)
    if is_compressed(state):
        network = LossNetwork(encoder, aux_heads_from_state(state), f"compressed VGG19 with aux heads ({path.name})")
    else:
        network = LossNetwork(encoder, None, f"vgg_normalised up to relu4_1 ({path.name})")
    return network.to(device)


def content_loss(output_feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """AdaIN's content loss: MSE between the output's relu4_1 and the AdaIN target t (eq. 12)."""
    return F.mse_loss(output_feat, target)


def pair_style_losses(
    output_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """The style loss of each pair, (N,): Σ over layers of the MSEs of channel means and stds, per pair.

    ``style_feats`` has N images, or 1 that every output is compared with.
    """
    assert len(output_feats) == len(style_feats) > 0, "need the same layers of output and style"
    weights = weights if weights is not None else [1.0] * len(output_feats)
    assert len(weights) == len(output_feats), f"need one weight per layer, got {len(weights)}"
    total = torch.zeros(output_feats[0].shape[0], device=output_feats[0].device)
    for output_feat, style_feat, weight in zip(output_feats, style_feats, weights, strict=True):
        output_mean, output_std = calc_mean_std(output_feat)  # (N, C, 1, 1) each
        style_mean, style_std = calc_mean_std(style_feat)
        squares = (output_mean - style_mean).pow(2) + (output_std - style_std).pow(2)
        total = total + weight * squares.flatten(1).mean(1)
    return total


def pair_content_losses(output_feat: torch.Tensor, content_feat: torch.Tensor) -> torch.Tensor:
    """The content loss of each pair, (N,): the MSE of relu4_1 between output and content photo."""
    return (output_feat - content_feat).pow(2).flatten(1).mean(1)


def style_loss(
    output_feats: Sequence[torch.Tensor], style_feats: Sequence[torch.Tensor], weights: Sequence[float] | None = None
) -> torch.Tensor:
    """AdaIN's style loss: Σ over layers (times ``weights``, default 1) of MSE of channel means and stds (eq. 13)."""
    return pair_style_losses(output_feats, style_feats, weights).mean()
