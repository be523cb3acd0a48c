"""Half-size ONNX files: float32 weights stored as float16, cast back to float32 when a session loads them.

The artifacts' safetensors weights are float16 already, so for the classifier and AdaIN this storage
loses nothing; for the detector, whose exported graph folds each BatchNorm into its conv, the folded
weights round to float16 (a relative error of at most 2^-11, far below OpenVINO's bf16 inference). The
graph still computes in float32: each weight passes through a ``Cast`` that ONNX Runtime and OpenVINO
fold into a constant when they compile the model, so the run costs nothing and the file half as much.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Tensors smaller than this stay float32 (biases, scales, shapes): casting them would save nothing.
MIN_ELEMENTS = 1024
SUFFIX = "__fp16"
RELATIVE_ERROR = 2.0**-10  # twice float16's rounding error: any normal float16 number passes
TINY = 2.0**-24  # float16's smallest step: weights this small may flush to zero


def store_weights_as_fp16(path: Path) -> int:
    """Rewrite the ONNX file at ``path`` with its large float32 initializers as float16; returns how many."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts: list[Any] = []
    kept: list[Any] = []
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or int(np.prod(tensor.dims)) < MIN_ELEMENTS:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        halved = values.astype(np.float16)
        if not fits_float16(values, halved):
            kept.append(tensor)
            continue
        half = numpy_helper.from_array(halved, tensor.name + SUFFIX)
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]  # the casts first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return len(casts)


def fits_float16(values: np.ndarray, halved: np.ndarray) -> bool:
    """Whether float16 holds ``values`` to float16's own precision: no overflow, no weight lost to underflow.

    A BatchNorm folded into a conv can scale weights far outside float16's range (a channel with a tiny
    variance); such a tensor stays float32.
    """
    if not np.isfinite(halved).all():
        return False
    error = np.abs(halved.astype(np.float32) - values)
    return bool((error <= RELATIVE_ERROR * np.abs(values) + TINY).all())


def uses_fp16_storage(path: Path) -> bool:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(tensor.name.endswith(SUFFIX) for tensor in model.graph.initializer)


def load_with_fp32_weights(path: Path) -> Any:
    """The ONNX model at ``path`` with float16-stored weights folded back to float32 (for quantization tools)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    halves = {t.name: t for t in graph.initializer if t.name.endswith(SUFFIX) and t.data_type == TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in halves]
    restored = [
        numpy_helper.from_array(numpy_helper.to_array(halves[n.input[0]]).astype(np.float32), n.output[0])
        for n in casts
    ]
    kept = [t for t in graph.initializer if t.name not in halves]
    del graph.initializer[:]
    graph.initializer.extend([*kept, *restored])
    remaining = [n for n in graph.node if n not in casts]
    del graph.node[:]
    graph.node.extend(remaining)
    return model
