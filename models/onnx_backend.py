"""Sessions for the exported networks: ONNX Runtime or OpenVINO running an artifact's ``.onnx`` files.

Torch-free: with every role on an ONNX engine, the service runs without torch installed. Both engines
read the same ONNX files (``deepcanvas models export``); the predictors only see ``NetworkSession``:
one array in, one array out. ``Runtime`` says which engine runs them, with how many threads and, for
OpenVINO, at which inference precision.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from models.artifact import ArtifactError, Manifest

EXPORT_HINT = "run `deepcanvas models export <artifact folder>` to add the ONNX files"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
Provider = str | tuple[str, dict[str, Any]]
Engine = Literal["onnxruntime", "openvino"]
# auto: OpenVINO's own choice for the CPU (bf16 where the CPU has AMX or AVX-512 BF16, else f32).
Precision = Literal["auto", "f32", "bf16"]


@dataclass(frozen=True)
class Runtime:
    """How the ONNX files run: engine, intra-op threads (0: the engine's default), OpenVINO precision, int8.

    ``int8`` opens each file's post-training int8 twin (``int8_file``) instead of the float file.
    """

    engine: Engine = "onnxruntime"
    threads: int = 0
    precision: Precision = "auto"
    int8: bool = False

    def __post_init__(self) -> None:
        assert self.threads >= 0, f"threads must be >= 0, got {self.threads}"


class NetworkSession(Protocol):
    """One exported network, ready to run: a float32 array in, its first output out (an array it owns)."""

    @property
    def output_shape(self) -> tuple[int | str | None, ...]: ...

    def run(self, array: np.ndarray) -> np.ndarray: ...

    def run_named(self, array: np.ndarray) -> dict[str, np.ndarray]: ...

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def engine_module(name: str) -> Any:
    """The engine's package (imported on first use); ``ArtifactError`` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ArtifactError(f"the {name} package is not installed ({error}); install it to use this backend") from error


def execution_providers(device: str) -> list[Provider]:
    """ONNX Runtime providers for a settings device (``cpu``, ``cuda``, ``cuda:N``); refuses what is unavailable."""
    ort = engine_module("onnxruntime")

    kind, _, index = device.partition(":")
    if kind == "cpu":
        return [CPU_PROVIDER]
    if kind == "cuda":
        if CUDA_PROVIDER not in ort.get_available_providers():
            raise ArtifactError(
                f"device {device!r} requested but onnxruntime {ort.__version__} has no {CUDA_PROVIDER} "
                "(install onnxruntime-gpu)"
            )
        return [(CUDA_PROVIDER, {"device_id": int(index or 0)}), CPU_PROVIDER]
    raise ArtifactError(f"device {device!r} is not supported by the ONNX backend: use cpu, cuda or cuda:N")


def session_options(threads: int = 0) -> Any:
    """All graph optimisations; ``threads`` intra-op threads, 0 keeps onnxruntime's default (one per core).

    Idle intra-op threads sleep instead of spinning: several models share the cores with the HTTP
    server, and a spinning pool burns CPU that a concurrent request needs (the reason the service
    sets ``OMP_WAIT_POLICY=PASSIVE`` for torch too).
    """
    ort = engine_module("onnxruntime")

    assert threads >= 0, f"threads must be >= 0, got {threads}"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


class OrtSession:
    """An ONNX Runtime inference session behind ``NetworkSession``."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = [node.name for node in session.get_inputs()]
        self.input_name = self.input_names[0]

    @property
    def output_shape(self) -> tuple[int | str | None, ...]:
        return tuple(self.session.get_outputs()[0].shape)

    def run(self, array: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(array, dtype=np.float32)}
        return np.asarray(self.session.run(None, feed)[0])

    def run_named(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name, for networks with more than one (the RFB detector's scores and boxes)."""
        feed = {self.input_name: np.ascontiguousarray(array, dtype=np.float32)}
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, (np.asarray(a) for a in self.session.run(names, feed)), strict=True))

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every output, in order, for a network of several inputs (given in its input order)."""
        names = self.input_names
        feed = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(names, arrays, strict=True)}
        return [np.asarray(a) for a in self.session.run(None, feed)]


class OpenVinoSession:
    """An OpenVINO compiled model and its one infer request; one caller at a time, like every predictor."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output = compiled.output(0)

    @property
    def output_shape(self) -> tuple[int | str | None, ...]:
        shape = self.output.get_partial_shape()
        return tuple(dim.get_length() if dim.is_static else None for dim in shape)

    def run(self, array: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: np.ascontiguousarray(array, dtype=np.float32)})
        return np.array(result[self.output], dtype=np.float32)  # a copy: the request reuses its output buffer

    def run_named(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name, for networks with more than one (the RFB detector's scores and boxes)."""
        result = self.request.infer({0: np.ascontiguousarray(array, dtype=np.float32)})
        return {port.get_any_name(): np.array(result[port], dtype=np.float32) for port in self.compiled.outputs}

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every output, in order, for a network of several inputs (given in its input order)."""
        assert len(arrays) == len(self.compiled.inputs), f"{len(self.compiled.inputs)} inputs, got {len(arrays)}"
        result = self.request.infer({i: np.ascontiguousarray(a, dtype=np.float32) for i, a in enumerate(arrays)})
        return [np.array(result[port], dtype=np.float32) for port in self.compiled.outputs]


def int8_file(path: str) -> str:
    """The name of an ONNX file's post-training int8 twin in its artifact: ``model.onnx`` -> ``model.int8.onnx``."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}.int8{dot}{suffix}" if dot else f"{path}.int8"


def open_session(
    folder: Path, manifest: Manifest, path: str, device: str, runtime: Runtime | None = None
) -> NetworkSession:
    """A session for the ONNX file ``path`` of a verified artifact; ``ArtifactError`` when it lacks one."""
    runtime = runtime or Runtime()
    where = f"{manifest.name}/{manifest.version}"
    path = int8_file(path) if runtime.int8 else path
    if not any(entry.path == path for entry in manifest.files):
        raise ArtifactError(f"{where}: the artifact has no {path}; {EXPORT_HINT}")
    if runtime.engine == "openvino":
        return _open_openvino(folder / path, where, path, device, runtime)
    return _open_onnxruntime(folder / path, where, path, device, runtime.threads)


def _open_onnxruntime(file: Path, where: str, path: str, device: str, threads: int) -> OrtSession:
    ort = engine_module("onnxruntime")

    providers = execution_providers(device)
    try:
        session = ort.InferenceSession(str(file), session_options(threads), providers=providers)
    except Exception as error:  # onnxruntime's own error types derive from Exception only
        raise ArtifactError(f"{where}: onnxruntime cannot load {path}: {error}") from error
    if device != "cpu" and CUDA_PROVIDER not in session.get_providers():
        # onnxruntime falls back to the CPU silently when the CUDA libraries fail to load
        raise ArtifactError(f"{where}: {CUDA_PROVIDER} failed to start for {path}; check the CUDA installation")
    if not session.get_inputs():
        raise ArtifactError(f"{where}: {path} takes no input")
    return OrtSession(session)


def openvino_config(runtime: Runtime) -> dict[str, Any]:
    """Compile options: one synchronous request at a time (latency hint), threads and precision when set."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if runtime.threads:
        config["INFERENCE_NUM_THREADS"] = runtime.threads
    if runtime.precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = runtime.precision
    elif runtime.int8:
        # OpenVINO 2026.4's CPU plugin finds no bf16 kernel for some of NNCF's int8 layers and refuses to
        # compile the model; at f32 the quantized layers still run in int8 and the rest in f32.
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return config


@cache
def _openvino_core() -> Any:
    return engine_module("openvino").Core()


def _open_openvino(file: Path, where: str, path: str, device: str, runtime: Runtime) -> OpenVinoSession:
    if device != "cpu":
        raise ArtifactError(f"device {device!r} is not supported by the OpenVINO backend here: use cpu")
    try:
        model = _openvino_core().read_model(str(file))
        if not model.inputs:
            raise ArtifactError(f"{where}: {path} takes no input")
        compiled = _openvino_core().compile_model(model, "CPU", openvino_config(runtime))
    except ArtifactError:
        raise
    except Exception as error:  # OpenVINO raises RuntimeError and its own Exception subclasses
        raise ArtifactError(f"{where}: openvino cannot load {path}: {error}") from error
    return OpenVinoSession(compiled)


def onnx_metadata(manifest: Manifest) -> dict[str, Any]:
    """What the exporter recorded in ``hyperparameters["onnx"]`` (empty when the artifact was never exported)."""
    metadata = manifest.hyperparameters.get("onnx", {})
    return metadata if isinstance(metadata, dict) else {}
