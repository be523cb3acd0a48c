"""The ``deepcanvas`` command: serve, manage model stores, benchmark.

Where only the client is installed (``pip install .``: none of the service's packages), the same script runs
the client's commands alone, as ``python -m deepcanvas`` does; so this module imports no server package at
import time.
"""

from __future__ import annotations

import importlib.util
import json
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from deepcanvas.cli import COMMANDS as CLIENT_COMMANDS
from deepcanvas.cli import print_error
from deepcanvas.identity_cli import COMMANDS as IDENTITY_COMMANDS
from deepcanvas.identity_cli import identities_cli

if TYPE_CHECKING:  # the service's settings import starlette, which a client-only installation lacks
    from app.settings import Settings
    from app.store import ArtifactStore

cli = typer.Typer(help="DeepCanvas: face detection, face classification and style transfer over HTTP.")
models_cli = typer.Typer(help="List, publish and alias model artifacts in a store.")
cli.add_typer(models_cli, name="models")
train_cli = typer.Typer(help="Train a model from data folders into an artifact (manifest + weights).")
eval_cli = typer.Typer(help="Evaluate an artifact on a data folder: metrics JSON and a model card.")
data_cli = typer.Typer(help="Build training data sets.")
cli.add_typer(train_cli, name="train")
cli.add_typer(eval_cli, name="eval")
cli.add_typer(data_cli, name="data")
console = Console()
for _name, _command in (CLIENT_COMMANDS | IDENTITY_COMMANDS).items():  # the client's commands: no torch
    cli.command(_name)(_command)
cli.add_typer(identities_cli, name="identities")

StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URI (file:///path or s3://bucket/prefix); default: settings")
]


def _settings(store: str | None) -> Settings:
    """The settings; invalid ones end the command with each problem on a line (never a value: some are secrets)."""
    from app.settings import Settings

    try:
        return Settings(store=store) if store else Settings()
    except ValidationError as error:
        err = Console(stderr=True)
        err.print("[red]error[/red]: invalid settings (environment variables DEEPCANVAS_*):", highlight=False)
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"]) or "settings"
            err.print(f"  DEEPCANVAS_{field.upper()}: {problem['msg']}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    store: StoreOption = None,
) -> None:
    """Start the HTTP service."""
    import uvicorn

    from app.lifecycle import GracefulServer
    from app.main import create_app
    from app.telemetry import configure_logging

    settings = _settings(store)
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # The drain (GracefulServer) has already waited up to the grace for requests in flight; what is left after
        # it gets a second. Waiting the grace again made a SIGTERM take twice the grace, past ECS's stop timeout.
        timeout_graceful_shutdown=1,
        timeout_keep_alive=75,  # longer than a load balancer's 60 s idle timeout, or it reuses closed sockets
    )
    GracefulServer(config, app.state.gate, settings.grace_period_s).run()


def _artifact_store(store: str | None) -> ArtifactStore:
    from app.main import open_artifact_store

    return open_artifact_store(_settings(store))


@models_cli.command("list")
def list_models(store: StoreOption = None) -> None:
    """Every name, version and alias in the store."""
    artifacts = _artifact_store(store)
    table = Table("name", "version", "task", "architecture", "aliases", "provenance")
    for name in artifacts.names():
        aliases = artifacts.aliases(name)
        for version in artifacts.versions(name):
            manifest = artifacts.manifest(name, version)
            tags = ", ".join(a for a, v in aliases.items() if v == version)
            table.add_row(name, version, manifest.task, manifest.architecture, tags, manifest.provenance.method)
    console.print(table)


@models_cli.command()
def push(
    folder: Annotated[Path, typer.Argument(help="A local artifact folder (manifest.json + files)")],
    store: StoreOption = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the pushed version")] = None,
) -> None:
    """Publish a local artifact folder to a store."""
    manifest = _artifact_store(store).push(folder, alias)
    console.print(f"pushed {manifest.name}/{manifest.version}")


@models_cli.command("push-store")
def push_store(
    root: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="A local store folder (<name>/<version>/ and <name>/aliases.json)"
        ),
    ],
    store: StoreOption = None,
) -> None:
    """Publish every artifact of a local store, then point the target's aliases where the local ones point."""
    target = _artifact_store(store)
    for manifest in target.push_store(root.resolve()):  # a relative folder has no file:// URI of its own
        console.print(f"pushed {manifest.name}/{manifest.version}")
    for name in sorted({p.parent.name for p in root.glob("*/aliases.json")}):
        console.print(f"{name}: {json.dumps(target.aliases(name))}")


@models_cli.command()
def pull(
    name: str,
    ref: Annotated[str, typer.Argument(help="Version or alias")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the verified artifact into")],
    store: StoreOption = None,
) -> None:
    """Fetch and verify an artifact, then copy it to ``dest``."""
    import shutil

    folder, manifest = _artifact_store(store).fetch(name, ref)
    shutil.copytree(folder, dest / manifest.name / manifest.version, dirs_exist_ok=True)
    console.print(f"pulled {manifest.name}/{manifest.version} into {dest}")


@models_cli.command()
def alias(name: str, alias: str, version: str, store: StoreOption = None) -> None:
    """Point ``alias`` of model ``name`` at ``version``."""
    _artifact_store(store).set_alias(name, alias, version)
    console.print(f"{name}:{alias} -> {version}")


@models_cli.command()
def starter(
    dest: Annotated[Path, typer.Argument(help="Store folder to write the untrained starter artifacts into")],
) -> None:
    """Write untrained (random initialisation) artifacts for every role, aliased ``stable``."""
    from models.starter import write_untrained_store

    for manifest in write_untrained_store(dest):
        console.print(json.dumps({"name": manifest.name, "version": manifest.version}))


@cli.command()
def bench(
    photo: Annotated[Path | None, typer.Option(help="Photo to send; default: a portrait or a generated scene")] = None,
    mode: Annotated[str, typer.Option(help="latency (HTTP vs in-process), load (vs a peer server) or all")] = "all",
    repeats: Annotated[int, typer.Option(min=3, help="Latency mode: timed calls per endpoint and side")] = 20,
    seconds: Annotated[float, typer.Option(min=1, help="Load mode: seconds per side, endpoint and client count")] = 10,
    blocks: Annotated[
        int, typer.Option(min=1, help="Load mode: alternating blocks the seconds are split into (both sides up)")
    ] = 4,
    clients: Annotated[str, typer.Option(help="Load mode: concurrent client counts")] = "1,16",
    max_side: Annotated[int, typer.Option(min=32, help="Stylize output bound")] = 512,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (the defaults), torch, onnx or openvino: what DeepCanvas runs; with --peer litserve, the "
            "engine of the same-network table (auto: openvino)"
        ),
    ] = "auto",
    store: StoreOption = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report here")] = None,
    peer: Annotated[
        str,
        typer.Option(
            help="Load mode: baseline (a plain FastAPI app) or litserve (two tables: same network, as shipped)"
        ),
    ] = "baseline",
    peer_batch_size: Annotated[int, typer.Option(min=1, help="litserve: its max_batch_size")] = 2,
    peer_batch_timeout_ms: Annotated[float, typer.Option(min=0, help="litserve: its batch_timeout")] = 1.0,
    endpoints: Annotated[str, typer.Option(help="Load mode: endpoints to load")] = "/detect,/classify,/stylize",
    baseline_detector: Annotated[
        str,
        typer.Option(
            help="baseline: the detector the naive app serves (NAME:VERSION, e.g. face-detector:v3 for a YOLO one "
            "through ultralytics' YOLO.predict); default: the store's stable detector, as DeepCanvas serves it"
        ),
    ] = "",
) -> None:
    """Latency through HTTP next to the same predictor in-process, and throughput against a peer server."""
    from app.bench import free_port, load_photo, print_report, run_bench
    from app.loadbench import SCENARIO_TITLES, litserve_scenarios, print_load_report, run_load_bench

    if mode not in ("latency", "load", "all"):
        raise typer.BadParameter("mode must be latency, load or all")
    if backend not in ("auto", "torch", "onnx", "openvino"):
        raise typer.BadParameter("backend must be auto, torch, onnx or openvino")
    if peer not in ("baseline", "litserve"):
        raise typer.BadParameter("peer must be baseline or litserve")
    if baseline_detector and peer != "baseline":
        raise typer.BadParameter("--baseline-detector chooses the naive app's detector: use it with --peer baseline")
    if peer == "litserve" and backend == "torch":
        raise typer.BadParameter("--peer litserve serves the exported networks: --backend auto, openvino or onnx")
    settings, image, report = _backend_settings(_settings(store), backend), load_photo(photo), {}
    if mode in ("latency", "all"):
        report["latency"] = run_bench(image, repeats, max_side, settings)
        print_report(report["latency"], console)
    if mode in ("load", "all"):
        counts = tuple(int(c) for c in clients.split(","))
        style = _first_style(settings)
        run = partial(
            run_load_bench,
            image,
            settings.store,
            style,
            free_port(),
            max_side,
            counts,
            seconds,
            tuple(endpoints.split(",")),
            blocks=blocks,
        )
        if peer == "baseline":
            report["load"] = run(
                peer, (), {"baseline": {"DEEPCANVAS_DETECTOR": baseline_detector}} if baseline_detector else None
            )
            print_load_report(report["load"], console)
        else:
            options = ("--max-batch-size", str(peer_batch_size), "--batch-timeout-ms", str(peer_batch_timeout_ms))
            engine = "openvino" if backend == "auto" else backend
            for name, envs in litserve_scenarios(engine).items():
                plain = ("--plain",) if name == "as_shipped" else ()
                report[name] = run(peer, (*options, *plain), envs)
                print_load_report(report[name], console, SCENARIO_TITLES[name])
    console.print_json(json.dumps(report))
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))


def _backend_settings(settings: Settings, backend: str) -> Settings:
    """The settings with every network on ``backend`` (the store's artifacts carry their ONNX files).

    They reach the server through the environment, so the in-process and the HTTP side use the same.
    """
    import os

    from app.settings import Settings

    if backend == "auto":
        return settings
    for role in ("DETECTOR", "CLASSIFIER", "STYLE"):
        os.environ[f"DEEPCANVAS_{role}_BACKEND"] = backend
    os.environ["DEEPCANVAS_STORE"] = settings.store
    return Settings()


def _first_style(settings: Settings) -> str:
    from app.main import open_artifact_store

    name, ref = settings.model_refs["gallery"]
    _, manifest = open_artifact_store(settings).fetch(name, ref)
    return manifest.gallery[0].name


def _register_model_commands() -> None:
    """The models package's own command functions; their heavy imports happen only when one runs."""
    from models import onnx_export
    from models.classifier import face_boxes as classifier_boxes
    from models.classifier import quantize as classifier_quantize
    from models.classifier import report as classifier_report
    from models.classifier import train as classifier_train
    from models.detector import commands as detector
    from models.detector import quantize as detector_quantize
    from models.detector.validation import commands as detector_validation
    from models.identity import commands as identity
    from models.identity import quantize as identity_quantize
    from models.style import commands as style

    train_cli.command("classifier")(classifier_train.main)
    eval_cli.command("classifier")(classifier_report.main)
    data_cli.command("classifier-boxes")(classifier_boxes.main)
    train_cli.command("detector")(detector.train)
    eval_cli.command("detector")(detector.evaluate)
    eval_cli.command("detector-report")(detector.report)
    data_cli.command("detector")(detector.synthesize)
    data_cli.command("detector-mixed")(detector.mixed)
    models_cli.command("import-yolo")(detector.import_yolo)
    models_cli.command("import-rfb")(detector.import_rfb)
    models_cli.command("rfb-views")(detector.rfb_views)
    data_cli.command("detector-validation")(detector_validation.build)
    eval_cli.command("detector-validation")(detector_validation.evaluate)
    train_cli.command("style")(style.train)
    eval_cli.command("style")(style.evaluate)
    eval_cli.command("style-choice")(style.choose_setting)
    eval_cli.command("identity")(identity.evaluate)
    models_cli.command("import-adain")(style.import_adain)
    models_cli.command("import-vgg")(style.import_vgg)
    models_cli.command("import-dlib")(identity.import_dlib)
    models_cli.command("attach-nst")(style.attach_nst)
    models_cli.command("match-decoder")(style.match_decoder)
    models_cli.command("own-manner")(style.own_manner)
    models_cli.command("gallery")(style.gallery)
    models_cli.command("export")(onnx_export.export_command)
    models_cli.command("quantize-classifier")(classifier_quantize.quantize_command)
    models_cli.command("quantize-detector")(detector_quantize.quantize_command)
    models_cli.command("quantize-embedder")(identity_quantize.quantize_command)


LIGHT_COMMANDS = ("serve", "bench", "identities", *CLIENT_COMMANDS, *IDENTITY_COMMANDS)
SERVER_COMMANDS = ("serve", "bench", "models", "train", "eval", "data")


def server_installed() -> bool:
    """Whether the service's packages are here (the ``serve`` extra); ``pip install .`` alone has the client."""
    return importlib.util.find_spec("fastapi") is not None


def _client_only(argv: list[str]) -> None:
    """The client's commands, as ``python -m deepcanvas`` runs them; a server command says what it lacks."""
    from deepcanvas.__main__ import main as client_main

    if argv and argv[0] in SERVER_COMMANDS:
        print_error(
            "error",
            f"deepcanvas {argv[0]} needs the service's packages, and only the client is installed "
            "(pip install '.[serve,torch,openvino]' adds them)",
        )
        raise SystemExit(2)
    client_main()


def main() -> None:
    import contextlib
    import os
    import sys

    # OpenMP threads that spin while waiting collapse throughput when cores are shared (a 2-core task next to
    # anything else: 2.1 s instead of 0.34 s per YOLOv5s call measured here). Set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Importing ultralytics sets OMP_NUM_THREADS=1 when it is unset; every process we start would inherit that.
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    if not server_installed():
        _client_only(sys.argv[1:])
        return

    # Training and evaluation commands import torch, torchvision and ultralytics at once: `serve`, `bench` and
    # the client's commands start faster without them (and the client's must never need them).
    if not (len(sys.argv) > 1 and sys.argv[1] in LIGHT_COMMANDS):
        # Importing ultralytics (the detector's commands do) announces the settings file it creates on first use
        # on stdout, before `--help` or `models list` prints a line: stdout is for what the command answers, so
        # that goes to stderr, with ultralytics' log (its handler keeps the stream it saw at import).
        with contextlib.redirect_stdout(sys.stderr):
            _register_model_commands()
    cli()


if __name__ == "__main__":  # python -m app.cli, as the deepcanvas script
    main()
