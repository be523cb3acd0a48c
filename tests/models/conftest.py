"""A starter store whose networks are exported to ONNX, made once per session (the exports take seconds)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from models.artifact import Manifest, Provenance, pack_artifact
from models.detector.network import build_yolo
from models.detector.starter import make_untrained_detector
from models.detector.types import WEIGHTS_FILE
from models.onnx_export import export_artifact
from models.starter import write_untrained_store
from models.torch_backend import save_state


@dataclass(frozen=True)
class ExportedStore:
    """A local store (``root/<name>/<version>``) and each artifact's manifest before and after the export."""

    root: Path
    before: dict[str, Manifest]
    after: dict[str, Manifest]

    def folder(self, name: str) -> Path:
        return self.root / name / self.after[name].version


def fake_relu5_1(path: Path, widths: tuple[int, ...]) -> Path:
    """A compressed encoder_relu5_1.pth layout with random weights (seed 1), under the file's own key names."""
    generator = torch.Generator().manual_seed(1)
    shapes = {"conv0": (3, 3, 1, 1)}
    names = ("conv11", "conv12", "conv21", "conv22", "conv31", "conv32", "conv33", "conv34", "conv41")
    stage = (0, 0, 1, 1, 2, 2, 2, 2, 3)
    previous = 3
    for name, index in zip(names, stage, strict=True):
        shapes[name] = (widths[index], previous, 3, 3)
        previous = widths[index]
    shapes |= {n: (widths[3], widths[3], 3, 3) for n in ("conv42", "conv43", "conv44", "conv51")}
    aux = {"conv11_aux": 0, "conv21_aux": 1, "conv31_aux": 2, "conv41_aux": 3, "conv51_aux": 3}
    shapes |= {n: (4 * widths[i], widths[i], 1, 1) for n, i in aux.items()}
    state = {}
    for name, shape in shapes.items():
        scale = (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        state[f"{name}.weight"] = torch.randn(shape, generator=generator) * scale
        state[f"{name}.bias"] = torch.zeros(shape[0])
    torch.save({"epoch": 0, "model": state}, path)
    return path


def picture(size: tuple[int, int], seed: int) -> Image.Image:
    """Smooth colour noise with a few drawn discs: something for random networks to respond to."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = int(rng.integers(0, size[0] - 8)), int(rng.integers(0, size[1] - 8))
        draw.ellipse((x, y, x + size[0] // 4, y + size[1] // 4), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image


def make_responsive_detector(folder: Path, seed: int = 0) -> Manifest:
    """The starter YOLOv5s with BatchNorm statistics measured on pictures (a data-dependent init).

    Random initialisation shrinks activations layer after layer, so the starter scores every anchor of
    a level alike and NMS must break ties, which two backends may break differently. With measured
    statistics, scores and boxes vary with the image, and the backends can be compared box by box.
    """
    starter = make_untrained_detector(folder, seed=seed)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        network = build_yolo(str(starter.hyperparameters["cfg"]), len(starter.labels))
        pictures = [np.asarray(picture((128, 128), 100 + i), dtype=np.float32) / 255 for i in range(4)]
        smooth = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).contiguous()  # (4, 3, 128, 128)
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0  # keep exactly the statistics of the batch below
        network.train()(smooth)
        temper_class_logits(network.eval(), smooth)
    save_state(network, folder / WEIGHTS_FILE)
    fields = starter.model_dump(exclude={"files", "schema_version", "provenance"})
    return pack_artifact(folder, **fields, provenance=Provenance(method="test: random weights, measured BatchNorm"))


def temper_class_logits(network: torch.nn.Module, images: torch.Tensor, mean: float = -6.0, std: float = 1.0) -> None:
    """Rescale each class convolution of the head so its logits on ``images`` have ``mean`` and ``std``.

    Measured statistics make deep activations large; untempered, most scores saturate at 1.0 and tie.
    """
    convs = [branch[-1] for branch in network.model[-1].cv3]  # type: ignore[index, union-attr]
    outputs: list[torch.Tensor] = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for conv in convs]
    network(images)
    for hook in hooks:
        hook.remove()
    for conv, logits in zip(convs, outputs, strict=True):
        unbiased = logits - conv.bias.view(1, -1, 1, 1)
        scale = std / unbiased.std().clamp_min(1e-6)
        conv.weight.mul_(scale)
        conv.bias.fill_(mean - float(unbiased.mean() * scale))


@pytest.fixture(scope="session")
def exported_store(tmp_path_factory: pytest.TempPathFactory) -> ExportedStore:
    """The starter store (a responsive detector, classifier, AdaIN, gallery) with ONNX files added in place."""
    root = tmp_path_factory.mktemp("onnx-store")
    before = {manifest.name: manifest for manifest in write_untrained_store(root)}
    detector = root / "face-detector" / before["face-detector"].version
    shutil.rmtree(detector)
    before["face-detector"] = make_responsive_detector(detector)
    after = {
        name: export_artifact(root / name / manifest.version)
        for name, manifest in before.items()
        if manifest.task != "style-gallery"
    }
    return ExportedStore(root, before, after)
