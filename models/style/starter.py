"""A small, random-initialised AdaIN artifact so the service runs before any weights are trained."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import torch

from models.artifact import InputSpec, Manifest, Provenance, pack_artifact
from models.predictor import save_state
from models.style.network import Decoder, VGGEncoder
from models.style.predictor import ARCHITECTURE, DECODER_FILE, ENCODER_FILE

STARTER_WIDTHS = (32, 64, 128, 256)
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def style_hyperparameters(widths: Sequence[int]) -> dict[str, object]:
    """What a loader needs to rebuild the networks, and what a reader needs to know the layers used."""
    return {
        "widths": [int(w) for w in widths],
        "content_layer": "relu4_1",
        "style_layers": ["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
        "input_range": "RGB in [0, 1]; conv0 applies VGG's normalisation",
    }


def he_initialised(module: ModuleT) -> ModuleT:
    """He-normal convolutions and zero biases, in place.

    PyTorch's default init shrinks the signal at every ReLU layer, so 19 random layers give a flat
    image whatever the input; He init keeps the variance, so even untrained outputs follow the content.
    """
    for layer in module.modules():
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            assert layer.bias is not None
            torch.nn.init.zeros_(layer.bias)
    return module


def smooth_probe(side: int = 64) -> torch.Tensor:
    """A random, photo-like (smooth) image (1, 3, side, side) in [0, 1]; uses torch's global generator."""
    coarse = torch.rand(1, 3, 8, 8)
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def calibrate_output(
    encoder: VGGEncoder, decoder: Decoder, probe: torch.Tensor | None = None, mean: float = 0.5, std: float = 0.2
) -> None:
    """Rescale the decoder's last conv so ``probe`` decodes to ``mean`` ± ``std`` per channel.

    A data-dependent init (as LSUV): without it untrained outputs sit far outside [0, 1] and clamp
    flat. Other inputs land only roughly there: untrained outputs stay psychedelic.
    """
    probe = smooth_probe() if probe is None else probe  # (1, 3, H, W)
    last = decoder[-1]
    assert isinstance(last, torch.nn.Conv2d) and last.bias is not None
    with torch.no_grad():
        output = decoder(encoder(probe))  # (1, 3, H, W)
        scale = std / output.std(dim=(0, 2, 3)).clamp_min(1e-6)  # (3,)
        last.weight.mul_(scale.view(3, 1, 1, 1))
        last.bias.copy_(mean - (output.mean(dim=(0, 2, 3)) - last.bias) * scale)


def make_untrained_style(
    folder: Path,
    name: str = "adain",
    version: str = "v0",
    widths: Sequence[int] = STARTER_WIDTHS,
    seed: int = 0,
) -> Manifest:
    """Write random-initialised encoder and decoder (float16 safetensors) and their manifest into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # a fixed seed without disturbing the caller's random state
        torch.manual_seed(seed)
        encoder, decoder = he_initialised(VGGEncoder(widths)), he_initialised(Decoder(widths))
        calibrate_output(encoder, decoder)
    save_state(encoder, folder / ENCODER_FILE)
    save_state(decoder, folder / DECODER_FILE)
    return pack_artifact(
        folder,
        name=name,
        version=version,
        task="stylize",
        architecture=ARCHITECTURE,
        hyperparameters=style_hyperparameters(widths),
        input=InputSpec(size=256),
        defaults={"alpha": 1.0},
        provenance=Provenance(method=f"untrained: random initialisation (seed {seed})"),
    )
