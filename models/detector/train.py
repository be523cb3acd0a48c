"""Train the YOLOv5s face detector with ultralytics' trainer, offline; pack the best weights as our artifact.

ultralytics owns the training loop (mosaic and HSV augmentation, the task-aligned loss, EMA, cosine
schedule, validation on the synthetic split, checkpoints); we own the data (``synthesize``), the
artifact (float16 safetensors + manifest, loaded by ``FaceDetector``) and the evaluation on real photos.
A rerun resumes from ``last.pt`` when a run stopped early, and only repacks when it had finished.

On the CPU ultralytics pins torch to ``cpu_count - 1`` threads (``torch_utils.NUM_THREADS``), one of
two cores here; ``threads`` overrides it for the whole run (all cores by default). ``base_artifact``
warm-starts from a shipped version, and the manifest records the chain: base, added epochs, data recipe.

    deepcanvas data detector ... && deepcanvas train detector DATA_YAML OUT_DIR --epochs 30 --device cuda
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from models.artifact import InputSpec, Manifest, Provenance, load_artifact, pack_artifact
from models.detector.evaluate import CARD_NAME, evaluate_detector, write_card_for
from models.detector.importer import count_classes, network_from_state, read_checkpoint, unpack_checkpoint
from models.detector.network import build_yolo, model_stride
from models.detector.predictor import WEIGHTS_FILE, FaceDetector
from models.detector.starter import CFG, DEFAULTS, LABELS
from models.detector.synthesize import RECIPE_FILE
from models.figures import figures_folder
from models.predictor import load_state, save_state
from models.provenance import git_commit

RUN_NAME = "ultralytics"  # the ultralytics run folder inside out_dir
ARTIFACT_NAME = "artifact"  # the artifact folder inside out_dir
FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # what ultralytics would otherwise download for its plots


@dataclass
class DetectorTrainConfig:
    data: Path  # an ultralytics data.yaml, e.g. from synthesize_dataset
    out_dir: Path
    epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"  # "cpu", "cuda", "cuda:0", ...
    workers: int = 0  # dataloader processes
    seed: int = 0
    patience: int = 100  # epochs without validation improvement before stopping early
    hours: float | None = None  # a time budget: ultralytics fits the epochs (and the LR schedule) into it
    base_artifact: Path | None = None  # start from these weights (any nc: matching layers are copied)
    threads: int | None = None  # torch threads on the CPU; None: every core (ultralytics would leave one idle)
    cfg: str = CFG
    amp: bool | None = None  # None: mixed precision on CUDA only
    deterministic: bool = True
    cache: bool = False  # keep decoded images in RAM
    fraction: float = 1.0  # share of the training images used (a smoke run: a few steps of the real data)
    resume: bool = True
    ultralytics_args: dict[str, Any] = field(default_factory=dict)  # any other trainer argument (lr0, mosaic...)
    name: str = "face-detector"
    version: str = "v1"
    eval_boxes: Path | None = None  # boxes.json of real photos; with eval_images, evaluated into the manifest
    eval_images: Path | None = None
    eval_split: str | None = None
    command: str | None = None
    figures: Path | None = None  # detections drawn on the eval photos (not shipped); default runs/figures/NAME-VERSION

    @property
    def run_dir(self) -> Path:
        return self.out_dir / RUN_NAME

    @property
    def artifact_dir(self) -> Path:
        return self.out_dir / ARTIFACT_NAME

    def use_amp(self) -> bool:
        return self.device.startswith("cuda") if self.amp is None else self.amp

    def torch_threads(self) -> int:
        return self.threads or os.cpu_count() or 1


def prepare_offline_ultralytics() -> None:
    """Keep ultralytics off the network: offline flags, and local fonts where it would download Arial."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "deepcanvas-ultralytics"))
    import matplotlib
    from ultralytics.utils import USER_CONFIG_DIR

    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    source = next((path for path in candidates if path.is_file()), None)
    for name in FONTS if source else ():
        target = Path(USER_CONFIG_DIR) / name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)  # type: ignore[arg-type]


@contextmanager
def amp_check_without_download(enabled: bool) -> Iterator[None]:
    """ultralytics validates AMP by downloading a model; offline, trust AMP on CUDA instead of trying."""
    if not enabled:
        yield
        return
    with mock.patch("ultralytics.engine.trainer.check_amp", lambda model: True):
        yield


@contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """Every ``select_device`` of the run sets ``threads`` torch threads instead of ultralytics' ``cpu_count - 1``."""
    with mock.patch("ultralytics.utils.torch_utils.NUM_THREADS", threads):
        yield


def trainer_arguments(cfg: DetectorTrainConfig) -> dict[str, Any]:
    return {
        "data": str(cfg.data),
        "epochs": cfg.epochs,
        "imgsz": cfg.imgsz,
        "batch": cfg.batch,
        "device": cfg.device,
        "workers": cfg.workers,
        "seed": cfg.seed,
        "deterministic": cfg.deterministic,
        "patience": cfg.patience,
        **({"time": cfg.hours} if cfg.hours else {}),
        "amp": cfg.use_amp(),
        "cache": cfg.cache,
        **({"fraction": cfg.fraction} if cfg.fraction < 1 else {}),
        "plots": False,
        "val": True,
        "project": str(cfg.out_dir.resolve()),
        "name": RUN_NAME,
        "exist_ok": True,
        **cfg.ultralytics_args,
    }


def run_state(last: Path) -> str:
    """``new``, ``unfinished`` (resumable) or ``finished``: ultralytics strips the optimizer at the end."""
    if not last.is_file():
        return "new"
    checkpoint = read_checkpoint(last, trust_pickle=True)  # our own run's file
    return "unfinished" if checkpoint.get("optimizer") is not None else "finished"


def base_weights_file(cfg: DetectorTrainConfig) -> Path:
    """Our base artifact written as an ultralytics ``{"model": module}`` file, which ``pretrained=`` reads."""
    assert cfg.base_artifact is not None
    manifest = load_artifact(cfg.base_artifact)
    network = build_yolo(str(manifest.hyperparameters.get("cfg", CFG)), len(manifest.labels))
    network.load_state_dict(load_state(cfg.base_artifact, manifest, WEIGHTS_FILE, torch.device("cpu")))
    path = cfg.out_dir / "base.pt"
    torch.save({"model": network}, path)
    return path


def run_ultralytics(cfg: DetectorTrainConfig) -> Path:
    """Train (or resume, or skip a finished run) and return the best checkpoint's path."""
    prepare_offline_ultralytics()
    from ultralytics import YOLO

    weights = cfg.run_dir / "weights"
    state = run_state(weights / "last.pt") if cfg.resume else "new"
    with amp_check_without_download(cfg.use_amp()), cpu_threads(cfg.torch_threads()):
        if state == "unfinished":
            YOLO(str(weights / "last.pt")).train(resume=True, data=str(cfg.data), workers=cfg.workers)
        elif state == "new":
            cfg.out_dir.mkdir(parents=True, exist_ok=True)
            pretrained: str | bool = str(base_weights_file(cfg)) if cfg.base_artifact else False
            YOLO(cfg.cfg).train(**trainer_arguments(cfg), pretrained=pretrained)
    best = weights / "best.pt"
    return best if best.is_file() else weights / "last.pt"


def network_and_metrics(checkpoint_path: Path) -> tuple[torch.nn.Module, dict[str, float]]:
    """Our network with the checkpoint's (EMA) weights, and ultralytics' validation metrics for them."""
    checkpoint = read_checkpoint(checkpoint_path, trust_pickle=True)  # our own freshly trained file
    content = unpack_checkpoint(checkpoint)
    network = network_from_state(content.state, content.cfg or CFG, count_classes(content.state))
    names = {
        "precision(B)": "precision",
        "recall(B)": "recall",
        "mAP50(B)": "map50",
        "mAP50-95(B)": "map50_95",
    }
    raw = checkpoint.get("train_metrics") or {}
    raw = {key.removeprefix("metrics/"): value for key, value in raw.items()}  # "metrics/mAP50(B)": ...
    metrics = {f"synthetic_val_{names[key]}": float(value) for key, value in raw.items() if key in names}
    return network, metrics


def prepare_artifact_dir(folder: Path) -> None:
    """An empty artifact folder; files of a previous artifact of ours are removed, anything else refused."""
    folder.mkdir(parents=True, exist_ok=True)
    ours = {WEIGHTS_FILE, "manifest.json", CARD_NAME}
    strangers = [p.name for p in folder.iterdir() if p.name not in ours and p.suffix != ".png"]
    if strangers:
        raise FileExistsError(f"{folder} holds files that are not a detector artifact: {sorted(strangers)}")
    for path in folder.iterdir():
        path.unlink()


def data_recipe(data_yaml: Path) -> dict[str, Any]:
    """The synthesis record next to ``data.yaml`` (empty for a data set made elsewhere)."""
    path = data_yaml.parent / RECIPE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def epochs_run(run_dir: Path) -> int:
    """How many epochs ultralytics logged in ``results.csv`` (0 before the first one ends)."""
    results = run_dir / "results.csv"
    return max(0, len(results.read_text().strip().splitlines()) - 1) if results.is_file() else 0


def base_record(base_artifact: Path | None) -> dict[str, Any] | None:
    """The warm start's identity and its own chain of bases, so a manifest tells every step back to scratch."""
    if base_artifact is None:
        return None
    manifest = load_artifact(base_artifact)
    training = manifest.hyperparameters.get("training") or {}
    return {
        "name": manifest.name,
        "version": manifest.version,
        "weights_sha256": manifest.file(WEIGHTS_FILE).sha256,
        "method": manifest.provenance.method,
        "base": training.get("base"),  # the base's own base, None when it was trained from scratch
    }


def portable_data_path(data_yaml: Path) -> str:
    """The data file relative to the folder that holds its data set (never this machine's absolute path)."""
    return f"{data_yaml.resolve().parent.name}/{data_yaml.name}"


def recipe_summary(recipe: dict[str, Any], cfg: DetectorTrainConfig) -> str:
    """One line for the provenance: what the data was and how long the network trained on it."""
    base = base_record(cfg.base_artifact)
    start = f", warm-started from {base['name']}/{base['version']}" if base else ", from scratch"
    epochs = epochs_run(cfg.run_dir) or cfg.epochs
    threads = f", {cfg.torch_threads()} threads" if cfg.device == "cpu" else ""
    budget = f" (a {cfg.hours:g} h budget on {cfg.device}{threads})" if cfg.hours else ""
    training = f"{'+' if base else ''}{epochs} epochs at {cfg.imgsz} px{budget}{start}"
    if not recipe:
        return training
    if "summary" in recipe:  # a mixed data set describes itself
        return f"{recipe['summary']}; {training}"
    r = recipe["recipe"]
    low, high = (round(f * r["size"]) for f in r["face_side"])
    return (
        f"{recipe['count']} composites of {r['size']} px, LFW3D faces through feathered ellipses, "
        f"{r['faces_per_image'][0]}-{r['faces_per_image'][1]} faces of {low}-{high} px, rotation "
        f"±{r['max_rotation_deg']:g} deg, colour and blur jitter, {len(recipe['backgrounds'])} face-free "
        f"photos and procedural textures, {r['empty_fraction']:.0%} without faces; {training}"
    )


def data_kind(recipe: dict[str, Any]) -> str:
    if recipe.get("kind") == "mixed":
        return "teacher-labelled real photos and composites"
    return "synthetic composites"


def evaluation_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    keys = ("ap", "precision", "recall", "f1", "best_f1", "best_f1_conf", "tp", "fp", "fn", "n_faces")
    return {f"face_boxes_{'ap50' if key == 'ap' else key}": float(evaluation[key]) for key in keys}


def pack_detector(cfg: DetectorTrainConfig, network: torch.nn.Module, metrics: dict[str, float]) -> Manifest:
    recipe = data_recipe(cfg.data)
    from ultralytics import __version__ as ultralytics_version

    training = {k: v for k, v in trainer_arguments(cfg).items() if k not in ("project", "name", "exist_ok")}
    training["data"] = portable_data_path(cfg.data)
    training["threads"] = cfg.torch_threads() if cfg.device == "cpu" else None
    training["epochs_run"] = epochs_run(cfg.run_dir)
    return pack_artifact(
        cfg.artifact_dir,
        name=cfg.name,
        version=cfg.version,
        task="detect",
        architecture=Path(cfg.cfg).stem,
        hyperparameters={
            "cfg": cfg.cfg,
            "nc": len(LABELS),
            "stride": model_stride(network),
            "training": {**training, "base": base_record(cfg.base_artifact)},
            "ultralytics": ultralytics_version,
            "data_recipe": recipe,
        },
        input=InputSpec(size=cfg.imgsz),
        labels=LABELS,
        defaults=DEFAULTS,
        metrics=metrics,
        provenance=Provenance(
            method=f"trained: ultralytics YOLOv5s on {data_kind(recipe)} ({recipe_summary(recipe, cfg)})",
            data=portable_data_path(cfg.data) + (f"; faces {recipe['faces']}" if recipe else ""),
            command=cfg.command,
            commit=git_commit(),
        ),
    )


def train_detector(cfg: DetectorTrainConfig) -> Manifest:
    """Train (resumably), write the artifact, and evaluate it on real photos when ``eval_*`` are given."""
    network, metrics = network_and_metrics(run_ultralytics(cfg))
    if count_classes(network.state_dict()) != len(LABELS):
        raise ValueError(f"{cfg.data}: a face detector's data set must have exactly one class")
    prepare_artifact_dir(cfg.artifact_dir)
    save_state(network, cfg.artifact_dir / WEIGHTS_FILE, half=True)
    manifest = pack_detector(cfg, network, metrics)
    # Load it as the service will, so a broken artifact fails here rather than at deployment.
    FaceDetector.from_artifact(cfg.artifact_dir, load_artifact(cfg.artifact_dir), torch.device("cpu"))
    if cfg.eval_boxes is None or cfg.eval_images is None:
        return manifest
    evaluation = evaluate_detector(cfg.artifact_dir, cfg.eval_boxes, cfg.eval_images, split=cfg.eval_split)
    manifest = pack_detector(cfg, network, {**metrics, **evaluation_metrics(evaluation)})
    header = [f"- Provenance: {manifest.provenance.method}", f"- Command: `{manifest.provenance.command}`"]
    write_card_for(
        {**evaluation, "model": f"{manifest.name}/{manifest.version}"},
        cfg.eval_images,
        cfg.artifact_dir,
        header=header,
        figures=cfg.figures or figures_folder(manifest.name, manifest.version),
    )
    return manifest
