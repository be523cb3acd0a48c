from __future__ import annotations

import pytest
import torch

from models.classifier.network import FaceNet, count_parameters


def test_default_facenet_has_well_under_two_million_parameters() -> None:
    assert count_parameters(FaceNet()) < 2_000_000


@pytest.mark.parametrize("side", [32, 64, 97])
def test_facenet_gives_one_logit_row_per_image_for_any_side_from_32(side: int) -> None:
    network = FaceNet(widths=(8, 16, 32), num_classes=3).eval()
    with torch.inference_mode():
        logits = network(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


def test_facenet_output_depends_on_the_input() -> None:
    torch.manual_seed(0)
    network = FaceNet(widths=(8, 16)).eval()
    with torch.inference_mode():
        logits = network(torch.randn(2, 3, 32, 32))
    assert not torch.allclose(logits[0], logits[1])


def test_facenet_trains_a_step_with_gradients_reaching_the_stem() -> None:
    network = FaceNet(widths=(8, 16))
    loss = torch.nn.functional.cross_entropy(network(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    stem_conv = network.stem[0]
    assert isinstance(stem_conv, torch.nn.Conv2d)
    stem_grad = stem_conv.weight.grad
    assert stem_grad is not None and stem_grad.abs().sum() > 0
