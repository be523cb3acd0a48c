"""Our own reader of dlib's serialization: the face-recognition ResNet and the 5-point shape predictor.

Format facts, measured on the released files:
- an integer is one control byte (high bit: negative; low 4 bits: how many bytes follow) then those bytes,
  little-endian; a float is two integers, mantissa then exponent (value = mantissa * 2**exponent);
  a string is its length then its bytes; a ``bool`` is one ASCII byte, ``'0'`` or ``'1'``;
- a dnn tensor is version 2, then n, k, rows, cols, then raw little-endian float32; a matrix is ``-rows``,
  ``-cols`` then its floats (each as a float above); a vector is its length then its items;
- a network is written outermost first: every layer's version (the innermost ``add_layer`` has version 3),
  then the input layer, then each layer's tag and data, innermost first, each followed by three bools and
  three (empty) tensors; the residual wiring (tags, skips) is not stored.

Anything else (a truncated file, another network, a wrong tag) raises ``DlibFormatError`` naming the offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.artifact import ArtifactError

INPUT_TAG = "input_rgb_image_sized"
LOSS_TAG = "loss_metric_2"


class DlibFormatError(ArtifactError):
    """A file is not the dlib model this reader expects (truncated, corrupt, or another network)."""


@dataclass
class DlibLayer:
    """One computational layer in forward order: its tag, its parameters, and its integer settings."""

    tag: str
    params: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    settings: tuple[int, ...] = ()


@dataclass
class DlibNetwork:
    """The layers of a dlib network, input side first, with the input layer's mean and size."""

    mean: tuple[float, float, float]
    size: tuple[int, int]
    layers: list[DlibLayer]


class Reader:
    """Sequential reads over the bytes of a dlib file; every read checks the bytes are there."""

    def __init__(self, data: bytes, name: str = "dlib file") -> None:
        self.data = data
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte {self.pos} of {len(self.data)}")

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"truncated: needs {count} more bytes")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        count = control & 0x0F
        if count > 8 or control & 0x70:
            raise self.fail(f"invalid integer control byte {control:#04x}")
        value = int.from_bytes(self.take(count), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"implausible string length {length}")
        return self.take(length).decode("ascii", errors="replace")

    def boolean(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            raise self.fail(f"expected a bool ('0' or '1'), got {byte!r}")
        return byte == b"1"

    def expect(self, value: int, what: str) -> None:
        got = self.integer()
        if got != value:
            raise self.fail(f"{what}: expected {value}, got {got}")

    def tensor(self) -> np.ndarray:
        """A dnn tensor, flattened to (n * k * rows * cols,) float32."""
        self.expect(2, "tensor version")
        dims = [self.integer() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimensions {dims}")
        count = int(np.prod(dims))
        return np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)

    def matrix(self) -> np.ndarray:
        """A dlib matrix of floats (rows, cols)."""
        rows, cols = -self.integer(), -self.integer()
        if rows < 0 or cols < 0:
            raise self.fail(f"invalid matrix size {rows}x{cols}")
        return np.array([self.real() for _ in range(rows * cols)], np.float32).reshape(rows, cols)

    def length(self, limit: int = 1 << 24) -> int:
        count = self.integer()
        if not 0 <= count <= limit:
            raise self.fail(f"implausible vector length {count}")
        return count

    def alias(self) -> tuple[int, ...]:
        """An alias tensor's description: version 1 and its four dimensions."""
        self.expect(1, "alias tensor version")
        return tuple(self.integer() for _ in range(4))

    def done(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unexpected bytes after the model")


def read_resnet(path: Path) -> DlibNetwork:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat`` (a ``loss_metric`` dnn) into its layers."""
    reader = Reader(path.read_bytes(), path.name)
    reader.expect(1, "loss layer version")
    if (tag := reader.string()) != LOSS_TAG:
        raise reader.fail(f"expected the {LOSS_TAG!r} loss, got {tag!r}")
    reader.real(), reader.real()  # the training margin and distance threshold (0.04, 0.6)
    versions = 0
    while (version := reader.integer()) in (1, 2):
        versions += 1
    if version != 3 or (tag := reader.string()) != INPUT_TAG:
        raise reader.fail(f"expected the innermost layer (version 3) over {INPUT_TAG!r}")
    mean = (reader.real(), reader.real(), reader.real())
    size = (reader.integer(), reader.integer())
    layers: list[DlibLayer] = []
    while reader.pos < len(reader.data):
        layers.append(_layer(reader))
        for _ in range(3):
            reader.boolean()
        for _ in range(3):
            reader.tensor()  # gradients and cached outputs: empty in a released model
        if len(layers) == 1:
            reader.expect(1, "sample expansion factor")
    if versions < len(layers):
        raise reader.fail(f"{versions} layer versions for {len(layers)} layers")
    return DlibNetwork(mean=mean, size=size, layers=layers)


def _layer(reader: Reader) -> DlibLayer:
    tag = reader.string()
    if tag == "con_4":
        params = reader.tensor()
        settings = tuple(reader.integer() for _ in range(7))  # filters, rows, cols, strides y/x, pads y/x
        reader.alias(), reader.alias()  # filters, biases
        _multipliers(reader)
        return DlibLayer("con", params, settings)
    if tag == "affine_":
        params = reader.tensor()
        reader.alias(), reader.alias()  # gamma, beta
        mode = reader.integer()
        return DlibLayer("affine", params, (mode,))
    if tag in ("relu_", "add_prev_"):
        return DlibLayer(tag.rstrip("_"))
    if tag in ("max_pool_2", "avg_pool_2"):
        settings = tuple(reader.integer() for _ in range(6))  # rows, cols, strides y/x, pads y/x
        return DlibLayer(tag[:-2], settings=settings)
    if tag == "fc_2":
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor()
        reader.alias(), reader.alias()  # weights, biases
        bias_mode = reader.integer()  # 1: no bias
        _multipliers(reader)
        return DlibLayer("fc", params, (outputs, inputs, bias_mode))
    raise reader.fail(f"unknown layer tag {tag!r}")


def _multipliers(reader: Reader) -> None:
    for _ in range(4):  # learning-rate and weight-decay multipliers of weights and biases
        reader.real()


def read_shape_predictor(path: Path) -> dict[str, np.ndarray]:
    """Parse a dlib ``shape_predictor`` file into arrays (all trees must have the same depth).

    ``initial_shape`` (P, 2); per cascade c and tree t: ``split_idx`` (C, T, S, 2) feature pixel pairs,
    ``thresholds`` (C, T, S), ``leaves`` (C, T, S + 1, P, 2) shape deltas; per cascade and feature pixel f:
    ``anchor_idx`` (C, F) the landmark it hangs off and ``deltas`` (C, F, 2) its offset in mean-shape units.
    """
    reader = Reader(path.read_bytes(), path.name)
    reader.expect(1, "shape predictor version")
    initial = reader.matrix()
    if initial.shape[1] != 1 or initial.size % 2:
        raise reader.fail(f"initial shape of size {initial.shape} is not a column of (x, y) pairs")
    points = initial.size // 2
    splits, thresholds, leaves = [], [], []
    for _ in range(reader.length(1000)):
        cascade_splits, cascade_thresholds, cascade_leaves = [], [], []
        for _ in range(reader.length(100_000)):
            tree_splits = [(reader.integer(), reader.integer(), reader.real()) for _ in range(reader.length(1 << 16))]
            tree_leaves = [reader.matrix() for _ in range(reader.length(1 << 17))]
            if len(tree_leaves) != len(tree_splits) + 1 or any(leaf.size != 2 * points for leaf in tree_leaves):
                raise reader.fail(f"a tree with {len(tree_splits)} splits and {len(tree_leaves)} leaves")
            cascade_splits.append([(a, b) for a, b, _ in tree_splits])
            cascade_thresholds.append([t for _, _, t in tree_splits])
            cascade_leaves.append(np.stack(tree_leaves).reshape(-1, points, 2))
        splits.append(cascade_splits)
        thresholds.append(cascade_thresholds)
        leaves.append(cascade_leaves)
    anchors = [[reader.integer() for _ in range(reader.length())] for _ in range(reader.length(1000))]
    deltas = [[(reader.real(), reader.real()) for _ in range(reader.length())] for _ in range(reader.length(1000))]
    reader.done()
    try:
        arrays = {
            "initial_shape": initial.reshape(points, 2),
            "split_idx": np.array(splits, np.int32),
            "thresholds": np.array(thresholds, np.float32),
            "leaves": np.array(leaves, np.float32),
            "anchor_idx": np.array(anchors, np.int32),
            "deltas": np.array(deltas, np.float32),
        }
    except ValueError as error:  # ragged: trees of different depths, cascades of different sizes
        raise DlibFormatError(f"{path.name}: the cascade is not regular ({error})") from error
    check_shape_predictor(arrays, path.name)
    return arrays


def check_shape_predictor(arrays: dict[str, np.ndarray], where: str) -> None:
    """Refuse arrays whose shapes or indices disagree (a corrupt file or artifact)."""
    cascades, trees, nodes = arrays["thresholds"].shape
    features = arrays["anchor_idx"].shape[1]
    points = arrays["initial_shape"].shape[0]
    expected = {
        "split_idx": (cascades, trees, nodes, 2),
        "leaves": (cascades, trees, nodes + 1, points, 2),
        "anchor_idx": (cascades, features),
        "deltas": (cascades, features, 2),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise DlibFormatError(f"{where}: {key} has shape {arrays[key].shape}, expected {shape}")
    if arrays["split_idx"].min() < 0 or arrays["split_idx"].max() >= features:
        raise DlibFormatError(f"{where}: a split refers to a feature pixel outside 0..{features - 1}")
    if arrays["anchor_idx"].min() < 0 or arrays["anchor_idx"].max() >= points:
        raise DlibFormatError(f"{where}: a feature pixel hangs off a landmark outside 0..{points - 1}")
