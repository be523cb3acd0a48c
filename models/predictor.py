"""The contract every predictor keeps, whatever runs the network (torch or ONNX Runtime).

A predictor is built from a verified artifact folder and its manifest on a device passed in
(``from_artifact(folder, manifest, device)``), runs ``preprocess -> forward -> postprocess`` (torch
predictors in ``.eval()`` mode under ``torch.inference_mode()``), and answers
``predict(batch) -> list[result]``, one result per input, in order.
A predictor instance is not thread-safe: callers give each instance to one thread at a time.

This module imports no torch: a service that runs only ONNX predictors never loads it. The torch
helpers live in ``models.torch_backend``; their old names here still resolve, lazily.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from models.artifact import Manifest

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")

_TORCH_HELPERS = ("load_state", "save_state", "resolve_device")


class Predictor(Protocol[InputT, ResultT]):
    @property
    def manifest(self) -> Manifest: ...

    def predict(self, batch: list[InputT], /) -> list[ResultT]: ...

    def warmup(self) -> None: ...


def __getattr__(name: str) -> Any:
    """``from models.predictor import load_state`` keeps working; torch is imported only then."""
    if name in _TORCH_HELPERS:
        from models import torch_backend

        return getattr(torch_backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
