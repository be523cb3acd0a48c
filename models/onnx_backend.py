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
    ``batch_streams``: on OpenVINO, a predictor that can split a batch (the RFB detector) also compiles its
    networks with this many streams and runs a batch's parts on them at once (``open_lanes``); 1: never.
    """

    engine: Engine = "onnxruntime"
    threads: int = 0
    precision: Precision = "auto"
    int8: bool = False
    batch_streams: int = 1

    def __post_init__(self) -> None:
        assert self.threads >= 0, f"threads must be >= 0, got {self.threads}"
        assert self.batch_streams >= 1, f"batch_streams must be >= 1, got {self.batch_streams}"


@dataclass(frozen=True)
class PixelInput:
    """A network whose input is ``(pixel - mean) / scale`` of RGB pixels in NCHW float32.

    A session opened with one takes the photo's ``(N, H, W, 3)`` uint8 pixels as they come from Pillow.
    OpenVINO then converts, normalises and transposes inside the compiled model (its pre-processing,
    fused with the first layer), which costs a fraction of numpy's float arithmetic and copy; ONNX Runtime
    gets the float array ``normalise`` makes.
    """

    mean: float
    scale: float

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 pixels as the network's ``(N, 3, H, W)`` float32 input."""
        assert pixels.ndim == 4 and pixels.shape[3] == 3, f"expected (N, H, W, 3) pixels, got {pixels.shape}"
        normalised = (pixels.astype(np.float32) - np.float32(self.mean)) / np.float32(self.scale)
        return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


class NetworkSession(Protocol):
    """One exported network, ready to run: a float32 array in (uint8 pixels when opened with a ``PixelInput``),
    its first output out (an array it owns)."""

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

    def __init__(self, compiled: Any, input_type: type[np.generic] = np.float32) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.output = compiled.output(0)
        self.input_type = input_type  # uint8 when the compiled model normalises pixels itself

    @property
    def output_shape(self) -> tuple[int | str | None, ...]:
        shape = self.output.get_partial_shape()
        return tuple(dim.get_length() if dim.is_static else None for dim in shape)

    def run(self, array: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: np.ascontiguousarray(array, dtype=self.input_type)})
        return np.array(result[self.output], dtype=np.float32)  # a copy: the request reuses its output buffer

    def run_named(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """Every output by name, for networks with more than one (the RFB detector's scores and boxes)."""
        result = self.request.infer({0: np.ascontiguousarray(array, dtype=self.input_type)})
        return {port.get_any_name(): np.array(result[port], dtype=np.float32) for port in self.compiled.outputs}

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every output, in order, for a network of several inputs (given in its input order)."""
        assert len(arrays) == len(self.compiled.inputs), f"{len(self.compiled.inputs)} inputs, got {len(arrays)}"
        feed = {i: np.ascontiguousarray(a, dtype=self.input_type) for i, a in enumerate(arrays)}
        result = self.request.infer(feed)
        return [np.array(result[port], dtype=np.float32) for port in self.compiled.outputs]


def int8_file(path: str) -> str:
    """The name of an ONNX file's post-training int8 twin in its artifact: ``model.onnx`` -> ``model.int8.onnx``."""
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}.int8{dot}{suffix}" if dot else f"{path}.int8"


def open_session(
    folder: Path,
    manifest: Manifest,
    path: str,
    device: str,
    runtime: Runtime | None = None,
    pixels: PixelInput | None = None,
    shape: tuple[int, int] | None = None,
) -> NetworkSession:
    """A session for the ONNX file ``path`` of a verified artifact; ``ArtifactError`` when it lacks one.

    ``pixels``: the session takes uint8 ``(N, H, W, 3)`` pixels and normalises them as the network expects.
    ``shape``: (width, height) an image input of any size is fixed to before OpenVINO compiles it (a static
    shape runs faster there); ONNX Runtime takes any size as it comes.
    """
    runtime = runtime or Runtime()
    where, path = _listed_file(manifest, path, runtime)
    if runtime.engine == "openvino":
        return OpenVinoSession(*_compile_openvino(folder / path, where, path, device, runtime, pixels, shape=shape))
    session = _open_onnxruntime(folder / path, where, path, device, runtime.threads)
    return session if pixels is None else PixelSession(session, pixels)


def _listed_file(manifest: Manifest, path: str, runtime: Runtime) -> tuple[str, str]:
    """The artifact's name for messages and the file ``runtime`` opens for ``path`` (its int8 twin when asked).

    ``ArtifactError`` when the artifact does not list that file.
    """
    where = f"{manifest.name}/{manifest.version}"
    path = int8_file(path) if runtime.int8 else path
    if not any(entry.path == path for entry in manifest.files):
        raise ArtifactError(f"{where}: the artifact has no {path}; {EXPORT_HINT}")
    return where, path


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


def openvino_config(runtime: Runtime, streams: int = 1) -> dict[str, Any]:
    """Compile options: one synchronous request at a time (latency hint), threads and precision when set.

    ``streams`` > 1: that many streams, the cores shared among them, for as many requests at once.
    """
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if streams > 1:
        config = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
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


def _compile_openvino(
    file: Path,
    where: str,
    path: str,
    device: str,
    runtime: Runtime,
    pixels: PixelInput | None = None,
    streams: int = 1,
    shape: tuple[int, int] | None = None,
) -> tuple[Any, type[np.generic]]:
    """The compiled model and the input type its sessions take; ``shape``: see ``open_session``."""
    if device != "cpu":
        raise ArtifactError(f"device {device!r} is not supported by the OpenVINO backend here: use cpu")
    try:
        model = _openvino_core().read_model(str(file))
        if not model.inputs:
            raise ArtifactError(f"{where}: {path} takes no input")
        if shape is not None:
            width, height = shape
            model.reshape({model.inputs[0]: [1, 3, height, width]})
        if pixels is not None:
            model = _with_pixel_input(model, pixels)
        compiled = _openvino_core().compile_model(model, "CPU", openvino_config(runtime, streams))
    except ArtifactError:
        raise
    except Exception as error:  # OpenVINO raises RuntimeError and its own Exception subclasses
        raise ArtifactError(f"{where}: openvino cannot load {path}: {error}") from error
    return compiled, np.uint8 if pixels is not None else np.float32


def open_lanes(
    folder: Path,
    manifest: Manifest,
    path: str,
    device: str,
    runtime: Runtime,
    pixels: PixelInput | None = None,
    shape: tuple[int, int] | None = None,
) -> list[OpenVinoSession]:
    """``runtime.batch_streams`` sessions on one compiled model with that many streams, to run at once.

    Empty unless the engine is OpenVINO and ``batch_streams`` > 1 (ONNX Runtime keeps one session).
    ``shape``: see ``open_session``.
    """
    if runtime.engine != "openvino" or runtime.batch_streams < 2:
        return []
    where, path = _listed_file(manifest, path, runtime)
    compiled, input_type = _compile_openvino(
        folder / path, where, path, device, runtime, pixels, runtime.batch_streams, shape
    )
    return [OpenVinoSession(compiled, input_type) for _ in range(runtime.batch_streams)]


def _with_pixel_input(model: Any, pixels: PixelInput) -> Any:
    """``model`` taking uint8 NHWC pixels: conversion, ``pixels``' normalisation and the transpose built in."""
    openvino = engine_module("openvino")
    from openvino.preprocess import PrePostProcessor

    processor = PrePostProcessor(model)
    processor.input().tensor().set_element_type(openvino.Type.u8).set_layout(openvino.Layout("NHWC"))
    processor.input().model().set_layout(openvino.Layout("NCHW"))
    processor.input().preprocess().convert_element_type(openvino.Type.f32).mean(pixels.mean).scale(pixels.scale)
    return processor.build()


def onnx_metadata(manifest: Manifest) -> dict[str, Any]:
    """What the exporter recorded in ``hyperparameters["onnx"]`` (empty when the artifact was never exported)."""
    metadata = manifest.hyperparameters.get("onnx", {})
    return metadata if isinstance(metadata, dict) else {}


class PixelSession:
    """A float-input session behind a pixel-input one: ``pixels``' normalisation in numpy, then the network."""

    def __init__(self, session: NetworkSession, pixels: PixelInput) -> None:
        self.session = session
        self.pixels = pixels

    @property
    def output_shape(self) -> tuple[int | str | None, ...]:
        return self.session.output_shape

    def run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(self.pixels.normalise(array))

    def run_named(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return self.session.run_named(self.pixels.normalise(array))

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.session.run_inputs([self.pixels.normalise(a) for a in arrays])
