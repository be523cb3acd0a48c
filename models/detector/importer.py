"""Import an ultralytics YOLO checkpoint (e.g. the public ``yolov5su.pt``) as one of our detector artifacts.

An ultralytics ``.pt`` file is a pickle holding the whole ``DetectionModel`` object, and unpickling can
run arbitrary code. So: the sha256 is checked before anything is unpickled; files are first read with
``weights_only=True`` against ultralytics' allow-list of its own layer classes (its "safe load"); only
when that refuses the file, and the operator passed ``trust_pickle``, is it fully unpickled. Only ever
import a local file the operator names, never one a request or a manifest points at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.artifact import ArtifactError, InputSpec, Manifest, Provenance, pack_artifact, sha256_file
from models.detector.network import build_yolo, check_config_name, model_stride
from models.detector.predictor import WEIGHTS_FILE
from models.detector.starter import CFG, DEFAULTS
from models.predictor import save_state

CLASS_CONV = re.compile(r"model\.\d+\.cv3\.0\.2\.weight")  # the Detect head's last class conv: (nc, c, 1, 1)


def check_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; raises ``ArtifactError`` when it is not ``expected`` (check before unpickling)."""
    digest = sha256_file(path)
    if expected is not None and digest != expected.lower():
        raise ArtifactError(f"{path}: sha256 {digest} differs from the expected {expected}")
    return digest


def read_checkpoint(path: Path, trust_pickle: bool = False) -> Any:
    """A checkpoint's content: restricted ``weights_only`` loading first, full unpickling only if trusted."""
    from ultralytics.nn.tasks import torch_safe_load

    # Without this torch API ultralytics' safe load silently becomes a full unpickle: never let it.
    restricted = hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint") and path.suffix == ".pt"
    try:
        if restricted:
            return torch_safe_load(str(path), safe_only=True)[0]
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # the restricted unpickler refuses unknown types with several error types
        if not trust_pickle:
            raise ArtifactError(
                f"{path}: not loadable with weights_only=True ({error}); if the file comes from a source you "
                "trust, pass trust_pickle (--trust-pickle): a pickled checkpoint can run code when loaded"
            ) from error
    # The operator vouched for this local file: ultralytics checkpoints are pickled module objects.
    return torch.load(path, map_location="cpu", weights_only=False)


@dataclass(frozen=True)
class CheckpointContent:
    """What an import needs from a checkpoint: float32 weights, class names, model config, training args."""

    state: dict[str, torch.Tensor]
    names: dict[int, str]
    cfg: str | None
    train_args: dict[str, Any]


def unpack_checkpoint(checkpoint: Any) -> CheckpointContent:
    """Read ``{"model" | "ema": DetectionModel, ...}`` (ultralytics), a bare module, or a plain state dict."""
    if isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return CheckpointContent(as_float32(checkpoint), {}, None, {})
    module, train_args = checkpoint, dict[str, Any]()
    if isinstance(checkpoint, dict):
        module = checkpoint.get("ema") if checkpoint.get("ema") is not None else checkpoint.get("model")
        train_args = checkpoint.get("train_args") or {}
    if not isinstance(module, torch.nn.Module):
        raise ArtifactError("checkpoint holds neither a model (alone, or under 'model'/'ema') nor a state dict")
    names = getattr(module, "names", None) or {}
    names = dict(enumerate(names)) if isinstance(names, list | tuple) else names
    yaml_file = (getattr(module, "yaml", None) or {}).get("yaml_file")
    return CheckpointContent(
        state=as_float32(module.state_dict()),
        names={int(k): str(v) for k, v in names.items()},
        cfg=Path(yaml_file).name if yaml_file else None,
        train_args={str(k): v for k, v in train_args.items() if isinstance(v, str | int | float | bool | None)},
    )


def as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def count_classes(state: dict[str, torch.Tensor]) -> int:
    """nc, read from the output channels of the Detect head's class branch."""
    shapes = {tuple(v.shape) for k, v in state.items() if CLASS_CONV.fullmatch(k)}
    if len(shapes) != 1:
        raise ArtifactError("cannot find the Detect head's class convolution in the checkpoint's state dict")
    return int(shapes.pop()[0])


def network_from_state(state: dict[str, torch.Tensor], cfg: str, nc: int) -> torch.nn.Module:
    """Our ``build_yolo`` network with ``state`` loaded strictly: same layers, same shapes, or an error."""
    try:
        network = build_yolo(check_config_name(cfg), nc)
        network.load_state_dict(state)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        raise ArtifactError(f"checkpoint does not fit {cfg} with {nc} classes: {error}") from error
    return network


def labels_for(names: dict[int, str], nc: int, labels: list[str] | None) -> list[str]:
    """Labels from the operator, else the checkpoint's names, else ``class0`` … (``face`` for one class)."""
    if labels is None:
        labels = [names.get(i, f"class{i}") for i in range(nc)] if names else None
    labels = labels or (["face"] if nc == 1 else [f"class{i}" for i in range(nc)])
    if len(labels) != nc:
        raise ArtifactError(f"{len(labels)} labels given for a checkpoint with {nc} classes")
    return labels


def import_yolo(
    pt_path: Path,
    out_folder: Path,
    name: str,
    version: str,
    expected_sha256: str | None = None,
    trust_pickle: bool = False,
    cfg: str | None = None,
    labels: list[str] | None = None,
    command: str | None = None,
) -> Manifest:
    """Convert an ultralytics checkpoint to a detector artifact (float16 weights, manifest) in ``out_folder``.

    ``cfg`` (a bundled ultralytics model config) defaults to the one the checkpoint records, else yolov5s.
    """
    digest = check_sha256(pt_path, expected_sha256)
    content = unpack_checkpoint(read_checkpoint(pt_path, trust_pickle))
    cfg, train_args = cfg or content.cfg or CFG, content.train_args
    nc = count_classes(content.state)
    labels = labels_for(content.names, nc, labels)
    network = network_from_state(content.state, cfg, nc)  # checked before writing: a refusal leaves no files
    out_folder.mkdir(parents=True, exist_ok=True)
    save_state(network, out_folder / WEIGHTS_FILE, half=True)
    imgsz = train_args.get("imgsz")
    return pack_artifact(
        out_folder,
        name=name,
        version=version,
        task="detect",
        architecture=Path(cfg).stem,
        hyperparameters={
            "cfg": cfg,
            "nc": nc,
            "stride": model_stride(network),
            "source_train_args": train_args,
        },
        input=InputSpec(size=imgsz if isinstance(imgsz, int) and imgsz > 0 else 640),
        labels=labels,
        defaults=DEFAULTS,
        provenance=Provenance(
            method=f"imported: ultralytics checkpoint {pt_path.name} (sha256 {digest})",
            data=str(train_args["data"]) if train_args.get("data") else None,
            command=command,
        ),
    )
