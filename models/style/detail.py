"""Would a ``preserve_detail`` knob keep faces recognisable better than lowering ``alpha``, at equal style strength?

``preserve_detail`` is ``adain.detail_preserving_decode``: measured here, not served (this measure found
lowering alpha keeps identity as well or better at the same style loss, so the service has no such knob).

For face photos × held-out paintings, each output is scored twice: its style loss to the painting
(evaluate.py's measure) and the distance between dlib's face descriptors (a ResNet trained for identity,
used only here, for evaluation) of the photo and of the output, on the face box found in the photo.
dlib calls two faces the same person below 0.6. Two curves, one per knob, say which keeps identity
better at a given style loss.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.style.adain import adaptive_instance_normalization, detail_preserving_decode
from models.style.loss_network import LossNetwork
from models.style.measures import pair_losses, square_image
from models.style.predictor import StyleTransfer

ALPHAS = (1.0, 0.85, 0.7, 0.55, 0.4)
DETAILS = (0.0, 0.25, 0.5, 0.75, 1.0)
SAME_PERSON = 0.6  # dlib's threshold on descriptor distance


@dataclass(frozen=True)
class CurvePoint:
    knob: str  # "alpha" or "preserve_detail"
    value: float
    style_loss: float  # median over (face, painting) pairs
    identity_distance: float  # median dlib descriptor distance, photo ↔ output
    same_person: float  # share of outputs dlib still calls the photo's person


class FaceIdentity:
    """dlib's HOG face detector, 5-point landmarks and ResNet descriptor (from a folder of .dat files)."""

    def __init__(self, dlib_dir: Path) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(dlib_dir / "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(str(dlib_dir / "dlib_face_recognition_resnet_model_v1.dat"))

    def box(self, image: np.ndarray) -> Any | None:
        faces = self.detector(image, 1)
        return max(faces, key=lambda r: r.area()) if faces else None

    def descriptor(self, image: np.ndarray, box: Any) -> np.ndarray:
        return np.asarray(self.encoder.compute_face_descriptor(image, self.landmarks(image, box)))


def _uint8(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy())


def _stylize(
    transfer: StyleTransfer, photo: torch.Tensor, painting: torch.Tensor, alpha: float, detail: float
) -> torch.Tensor:
    content_feat = transfer.encoder(photo)  # (1, C4, H/8, W/8)
    target = alpha * adaptive_instance_normalization(content_feat, transfer.encoder(painting))
    target = target + (1.0 - alpha) * content_feat
    return detail_preserving_decode(transfer.decoder, target, content_feat, detail).clamp(0.0, 1.0)


def detail_curves(
    transfer: StyleTransfer,
    loss_net: LossNetwork,
    faces: Sequence[Path],
    styles: Sequence[Path],
    dlib_dir: Path,
    size: int = 256,
) -> list[CurvePoint]:
    """One point per setting of each knob (the other at its default), over every (face, painting) pair."""
    identity = FaceIdentity(dlib_dir)
    device = transfer.device
    photos = [(square_image(p, size, device), None) for p in faces]
    found = [(photo, identity.box(_uint8(photo))) for photo, _ in photos]
    found = [(photo, box) for photo, box in found if box is not None]
    assert found, "dlib found no face in any photo"
    paintings = [square_image(p, size, device) for p in styles]
    settings = [("alpha", a, a, 0.0) for a in ALPHAS] + [("preserve_detail", d, 1.0, d) for d in DETAILS[1:]]
    points = []
    for knob, value, alpha, detail in settings:
        losses, distances = [], []
        for photo, box in found:
            own = identity.descriptor(_uint8(photo), box)
            for painting in paintings:
                with torch.inference_mode():
                    output = _stylize(transfer, photo, painting, alpha, detail)
                    losses.append(pair_losses(loss_net, output, photo, painting)[0][0])
                distances.append(float(np.linalg.norm(identity.descriptor(_uint8(output), box) - own)))
        same = statistics.fmean(float(d < SAME_PERSON) for d in distances)
        points.append(CurvePoint(knob, value, statistics.median(losses), statistics.median(distances), same))
    return points


def plot_curves(points: list[CurvePoint], path: Path) -> None:
    """Identity distance against style loss, one line per knob, each point labelled with its value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for knob, marker in (("alpha", "o"), ("preserve_detail", "s")):
        # both lines start from the default (alpha 1, preserve_detail 0)
        line = [p for p in points if p.knob == knob or (p.knob == "alpha" and p.value == 1.0)]
        line.sort(key=lambda p: p.style_loss)
        axes.plot([p.style_loss for p in line], [p.identity_distance for p in line], marker=marker, label=knob)
        for p in line:
            axes.annotate(f"{p.value:g}", (p.style_loss, p.identity_distance), fontsize=7)
    axes.axhline(SAME_PERSON, color="grey", linestyle=":", label="dlib same-person threshold")
    axes.set_xlabel("style loss to the painting (median; lower: more painted)")
    axes.set_ylabel("dlib identity distance (median)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
