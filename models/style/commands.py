"""Typer commands for AdaIN: ``deepcanvas train style``, ``deepcanvas eval style``, ``deepcanvas models import-adain``.

Plain functions; the CLI registers them (e.g. ``train_cli.command("style")(commands.train)``).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console

from models.figures import FIGURES_HELP
from models.provenance import invoked_command
from models.style.split import DEFAULT_RULE, HELD_OUT_RULES, VALIDATION_MAX
from models.style.train_config import Objective

console = Console()

ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
# An artifact a command edits in place, or copies to --out as --version first (attach-nst, match-decoder).
EditedArtifact = Annotated[Path, typer.Argument(exists=True, file_okay=False, help="AdaIN artifact folder (edited)")]
OutOption = Annotated[Path | None, typer.Option(help="Write a new version here instead of editing ARTIFACT")]
VersionOption = Annotated[str | None, typer.Option(help="With --out: the new version's name (default: OUT's name)")]
FiguresOption = Annotated[Path | None, typer.Option(help=FIGURES_HELP)]


def _layer_weights(text: str) -> tuple[float, float, float, float]:
    parts = [float(part) for part in text.split(",")]
    if len(parts) != 4 or min(parts) < 0 or max(parts) <= 0:
        raise typer.BadParameter(f"style layer weights must be 4 non-negative comma-separated numbers, not {text!r}")
    return (parts[0], parts[1], parts[2], parts[3])


def _numbers(text: str, low: float, high: float, what: str) -> list[float]:
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        parts = []
    if not parts or not all(low <= part <= high for part in parts):
        raise typer.BadParameter(f"{what} must be comma-separated numbers in [{low:g}, {high:g}], not {text!r}")
    return parts


def _manners(text: str) -> list[float]:
    return _numbers(text, 0.0, 1.0, "manners (strengths)")


def _bounds(text: str) -> list[float]:
    return _numbers(text, 0.5, 10.0, "bounds (content ratios)")


def _widths(text: str) -> tuple[int, int, int, int]:
    parts = [int(part) for part in text.split(",")]
    if len(parts) != 4 or min(parts) <= 0:
        raise typer.BadParameter(f"widths must be 4 positive comma-separated ints, not {text!r}")
    return (parts[0], parts[1], parts[2], parts[3])


@contextmanager
def stop_requests() -> Iterator[threading.Event]:
    """The first SIGINT/SIGTERM sets the event (training stops after the step, checkpointed); a second acts as usual."""
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous: dict[int, Any] = {number: signal.getsignal(number) for number in signals}

    def request_stop(number: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(number, previous[number])

    for signum in signals:
        signal.signal(signum, request_stop)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def train(
    content_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Content photos (recursive)")],
    style_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Style images (recursive)")],
    loss_network: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Compressed VGG19 or vgg_normalised")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Artifact folder to write; its name is the default version")],
    iterations: Annotated[int, typer.Option(min=1, help="Total iterations (a resumed run continues to it)")] = 160_000,
    batch_size: Annotated[int, typer.Option(min=2)] = 8,
    crop: Annotated[int, typer.Option(min=32, help="Training crop side; multiple of 8")] = 256,
    widths: Annotated[str, typer.Option(help="Encoder/decoder stage widths (from scratch; a base sets its own)")] = (
        "32,64,128,256"
    ),
    base: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="AdaIN artifact to start from: its encoder frozen, its decoder trained on",
        ),
    ] = None,
    bf16: Annotated[
        bool, typer.Option(help="bfloat16 autocast for the networks (weights and losses stay float32)")
    ] = False,
    warmup: Annotated[int, typer.Option(min=0, help="Linear learning-rate warm-up steps")] = 0,
    hours: Annotated[
        float | None, typer.Option(min=0.0, help="Time budget; then checkpoint and write the artifact")
    ] = None,
    lr: float = 1e-4,
    lr_decay: float = 5e-5,
    style_weight: Annotated[float, typer.Option(help="λ, the style loss weight")] = 1.0,
    style_layer_weights: Annotated[
        str, typer.Option(help="Weights of relu1_1,relu2_1,relu3_1,relu4_1 in the style loss")
    ] = "1,1,1,1",
    content_weight: float = 1.0,
    objective: Annotated[
        Objective, typer.Option(help="paper: AdaIN's losses; measures: mean log style and content loss per pair")
    ] = Objective.paper,
    manner: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Train under decoder-side matching at this strength (0: none)")
    ] = 0.0,
    ema: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.9999, help="Decay of the decoder's weight average, written as the artifact (0: none)"
        ),
    ] = 0.0,
    distill_weight: float = 1.0,
    pixel_weight: float = 10.0,
    self_pairs: Annotated[int, typer.Option(min=0, help="(content, content) pairs per batch")] = 1,
    held_out: Annotated[
        str | None,
        typer.Option(
            help="models/style/split.py's rule for the images kept out of training, v1 or v2 (default: the base's, "
            "else v1); a base trained under one rule trains on under it only"
        ),
    ] = None,
    faces_dir: Annotated[Path | None, typer.Option(exists=True, file_okay=False, help="Face crops")] = None,
    face_fraction: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.25,
    style_jitter: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of style crops given another palette (hue and saturation)")
    ] = 0.0,
    seed: int = 0,
    threads: Annotated[int, typer.Option(min=1)] = 1,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes")] = 0,
    checkpoint_every: Annotated[int, typer.Option(min=1)] = 500,
    checkpoint: Annotated[Path | None, typer.Option(help="Default: OUT_DIR.checkpoint.pt beside OUT_DIR")] = None,
    device: str = "cpu",
    name: str = "adain",
    version: Annotated[str | None, typer.Option(help="Default: OUT_DIR's name")] = None,
    progress: bool = True,
    evaluate: Annotated[bool, typer.Option(help="Evaluate on the reported held-out pairs and write the card")] = True,
    figures: FiguresOption = None,
) -> None:
    """Train an AdaIN decoder from --base (or both networks from scratch), resuming a checkpoint, into an artifact."""
    from models.style.train import train_style
    from models.style.train_config import StyleTrainConfig, held_out_rule

    try:
        rule = held_out_rule(base, held_out)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--held-out") from error
    cfg = StyleTrainConfig(
        content_dir=content_dir,
        style_dir=style_dir,
        loss_network=loss_network,
        out_dir=out_dir,
        widths=_widths(widths),
        iterations=iterations,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        lr_decay=lr_decay,
        style_weight=style_weight,
        style_layer_weights=_layer_weights(style_layer_weights),
        content_weight=content_weight,
        objective=objective.value,
        manner=manner,
        ema=ema,
        distill_weight=distill_weight,
        pixel_weight=pixel_weight,
        self_pairs=self_pairs,
        held_out=rule,
        faces_dir=faces_dir,
        face_fraction=face_fraction,
        style_jitter=style_jitter,
        seed=seed,
        threads=threads,
        workers=workers,
        checkpoint_every=checkpoint_every,
        checkpoint=checkpoint,
        time_limit_s=hours * 3600.0 if hours is not None else None,
        base=base,
        bf16=bf16,
        warmup=warmup,
        device=device,
        name=name,
        version=version,
        progress=progress,
        command=invoked_command(),
        evaluate=evaluate,
        figures=figures,
    )
    try:
        with stop_requests() as stop:
            manifest = train_style(cfg, stop)
    except KeyboardInterrupt as interrupt:
        console.print(f"[yellow]{interrupt}[/yellow]")
        raise typer.Exit(130) from None
    console.print(json.dumps({"artifact": str(out_dir), "metrics": manifest.metrics}, indent=2))


def evaluate(
    artifact: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="AdaIN artifact folder")],
    loss_network: ExistingFile,
    content_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    style_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
    size: Annotated[int, typer.Option(min=16, help="Side of the center squares evaluated")] = 256,
    baseline: Annotated[
        Path | None, typer.Option(exists=True, file_okay=False, help="Artifact to compare with (e.g. the import)")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Stylize through this running service's POST /stylize")] = None,
    card: Annotated[
        bool, typer.Option(help="(Re)write the artifact's model card (its pictures into --figures) and re-pack")
    ] = False,
    split: Annotated[
        str,
        typer.Option(
            help="test: the reported held-out pairs; validation: other held-out images, for choosing; unseen: the "
            "held-out images neither uses (a second test, for a setting chosen after the test pairs were seen)"
        ),
    ] = "test",
    nst_pairs: Annotated[int, typer.Option(min=0, help="With --card: measure method=nst beside AdaIN on N pairs")] = 0,
    manner: Annotated[
        float | None, typer.Option(min=0, max=1, help="Decoder-side matching strength (default: the artifact's)")
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            min=2,
            help=f"Validation only: photos and paintings of each (rule v1: default 8, at most {VALIDATION_MAX}; "
            "v2: default all of its validation works)",
        ),
    ] = None,
    photos: Annotated[
        int | None,
        typer.Option(min=2, help="Validation under rule v2 only: this many of its photos, spread, and every painting"),
    ] = None,
    held_out: Annotated[
        str | None,
        typer.Option(help="models/style/split.py's rule the splits come from, v1 or v2 (default: the artifact's)"),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            help="Also measure these manners (comma-separated) on the same pairs and baseline: manner_<m>_<metric>"
        ),
    ] = None,
    bounds: Annotated[
        str | None,
        typer.Option(
            help="Also measure each painting's own manner under these content bounds (comma-separated; artifacts "
            "with own-manner): own_<bound>_<metric>"
        ),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Also write every pair's losses, ratios and own-painting flag to this CSV (runs: default, "
            "manner_<m> or own_<bound>, baseline)",
        ),
    ] = None,
    device: str = "cpu",
    figures: FiguresOption = None,
) -> None:
    """Losses of an artifact and of a baseline artifact on the held-out content × style pairs, and their ratios."""
    import torch

    from models.artifact import load_artifact, repack_artifact
    from models.figures import figures_folder
    from models.style.evaluate import (
        EVAL_COUNT,
        Manner,
        PairFlags,
        PairLosses,
        evaluate_transfer,
        evaluation_images,
        load_transfer,
        unseen_images,
        validation_images,
        write_evaluation,
        write_pair_table,
    )

    if split not in ("test", "validation", "unseen"):
        raise typer.BadParameter(f"split must be test, validation or unseen, not {split!r}")
    if card and split != "test":
        raise typer.BadParameter("the card reports the test split only")
    if card and manner is not None:
        raise typer.BadParameter("the card reports the artifact's default manner (and a sweep of others)")
    if (count is not None or photos is not None) and split != "validation":
        raise typer.BadParameter(f"--count, --photos: validation only; the {split} split is fixed")
    from models.style.own_manner import OwnManner

    swept: list[Manner] = [*(_manners(sweep) if sweep is not None else [])]
    swept += [OwnManner(bound) for bound in (_bounds(bounds) if bounds is not None else [])]
    if swept and (card or url):
        raise typer.BadParameter("--sweep measures the artifact's own networks, not a card or a service")
    if pairs is not None and card:
        raise typer.BadParameter("--pairs writes an evaluation's per-pair table; the card keeps only its summary")
    trained_under = load_artifact(artifact).hyperparameters.get("held_out", DEFAULT_RULE)
    rule = held_out or trained_under
    if rule not in HELD_OUT_RULES:
        raise typer.BadParameter(f"--held-out is one of {', '.join(HELD_OUT_RULES)}, not {rule!r}")
    if card and rule != trained_under:
        raise typer.BadParameter("the card reports the test pairs of the rule the artifact was trained under")
    if rule == "v1" and count is not None and count > VALIDATION_MAX:
        raise typer.BadParameter(f"rule v1's validation split takes at most {VALIDATION_MAX} of each")
    if split == "test":
        contents, styles = evaluation_images(content_dir, style_dir, rule=rule)
    elif split == "unseen":
        if rule != "v1":
            raise typer.BadParameter(f"rule {rule} has no unseen split: its test and validation take every work")
        contents, styles = unseen_images(content_dir, style_dir)
    else:
        if photos is not None and rule != "v2":
            raise typer.BadParameter("--photos spreads rule v2's validation photos; rule v1 has --count")
        contents, styles = validation_images(
            content_dir, style_dir, count or (EVAL_COUNT if rule == "v1" else None), rule, photos
        )
    if not contents or not styles:
        empty = " and ".join(kind for kind, images in (("CONTENT_DIR", contents), ("STYLE_DIR", styles)) if not images)
        raise typer.BadParameter(
            f"held-out rule {rule}'s {split} split has no images in {empty}: it needs enough images that some are held "
            "out and fall in it (with v1, at least two of each)"
        )
    if rule != trained_under:
        console.print(
            f"[yellow]note: {artifact} was trained under held-out rule {trained_under}; rule {rule}'s {split} images "
            "may include some it trained on[/yellow]",
            highlight=False,
        )
    torch_device = torch.device(device)
    if card:
        manifest = load_artifact(artifact)
        pictures = figures or figures_folder(manifest.name, manifest.version)
        metrics = write_evaluation(
            artifact,
            manifest,
            loss_network,
            contents,
            styles,
            size,
            baseline,
            torch_device,
            nst_pairs,
            figures=pictures,
        )
        repack_artifact(artifact, metrics=metrics)  # the card and its charts are listed and hashed
        console.print(f"pictures of ../shared's images (not shipped): {pictures}")
    else:
        transfer = load_transfer(artifact, torch_device)
        if transfer.matching is None and any(swept):
            raise typer.BadParameter("this artifact's decoder does not match (deepcanvas models match-decoder)")
        if transfer.painting_manners is None and bounds is not None:
            raise typer.BadParameter("--bounds: this artifact has no own manner (deepcanvas models own-manner)")
        runs: PairLosses = {}
        own: PairFlags = {}
        evaluated = evaluate_transfer(
            transfer, loss_network, contents, styles, size, baseline, url, manner, swept, runs, own
        )
        metrics = evaluated[0]
        if pairs is not None:
            rows = write_pair_table(pairs, contents, styles, runs, own)
            console.print(f"{rows} rows of per-pair losses: {pairs}", highlight=False)
    console.print(json.dumps({"contents": [p.name for p in contents], "styles": [p.name for p in styles]}))
    console.print(json.dumps(metrics, indent=2))


def import_vgg(
    encoder: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="encoder_relu4_1.pth (compressed)")],
    decoder: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="decoder_relu4_1.pth (compressed)")],
    license_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Their LICENSE file")],
    out_dir: Annotated[Path, typer.Argument(help="Artifact folder to write")],
    name: str = "adain",
    version: str = "vgg16x",
) -> None:
    """Import the compressed VGG19 encoder and reconstruction decoder (MIT) as a base AdaIN artifact."""
    from models.style.importer import import_compressed_vgg

    manifest = import_compressed_vgg(encoder, decoder, license_file, out_dir, name, version, invoked_command())
    console.print(f"imported {manifest.name}/{manifest.version} into {out_dir}")


def attach_nst(
    artifact: EditedArtifact,
    encoder: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="encoder_relu5_1.pth (compressed)")],
    license_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Its LICENSE file")],
    out: OutOption = None,
    version: VersionOption = None,
) -> None:
    """Add the compressed VGG19 to relu5_1 (MIT) to a style artifact: method=nst's loss network."""
    from models.style.importer import attach_nst_network, copy_as_version

    if out is not None:
        artifact = copy_as_version(artifact, out, version or out.name)
    manifest = attach_nst_network(artifact, encoder, license_file)
    console.print(f"{manifest.name}/{manifest.version}: NST network {manifest.hyperparameters['nst_network']}")


def match_decoder(
    artifact: EditedArtifact,
    strength: Annotated[float, typer.Option(min=0.0, max=1.0, help="How far each matched layer moves (0 to 1)")],
    layers: Annotated[
        str | None, typer.Option(help="Decoder ReLU indices, comma-separated (default: every ReLU)")
    ] = None,
    out: OutOption = None,
    version: VersionOption = None,
) -> None:
    """Match the decoder's activations to the painting's own at its ReLUs (models/style/matching.py); same weights."""
    from models.style.importer import attach_matching, copy_as_version, plan_matching

    try:  # before anything is written: a refused layer leaves no copy behind
        chosen = [int(part) for part in layers.split(",")] if layers else None
        plan_matching(artifact, strength, chosen)
    except (AssertionError, ValueError) as error:
        raise typer.BadParameter(f"--layers: {error}") from error
    if out is not None:
        artifact = copy_as_version(artifact, out, version or out.name)
    manifest = attach_matching(artifact, strength, chosen)
    entry = manifest.hyperparameters["decoder_matching"]
    console.print(f"{manifest.name}/{manifest.version}: decoder_matching {entry}")


def choose_setting(
    pairs: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="eval style --pairs's table")],
    paintings: Annotated[int, typer.Option(min=2, help="Paintings in each resampled grid (the test grid's count)")],
    draws: Annotated[int, typer.Option(min=10, help="Resampled grids")] = 500,
    seed: int = 0,
) -> None:
    """Choose among a validation table's runs with a margin for the painting draw (models/style/choice.py)."""
    from models.style.choice import choose, describe, read_pairs

    table = read_pairs(pairs)
    if not table:
        raise typer.BadParameter(f"{pairs}: no run with ratios and own-painting flags (run eval style with a baseline)")
    try:
        summaries, chosen = choose(table, paintings, draws, seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    console.print(describe(summaries, chosen), highlight=False, markup=False)


def own_manner(
    artifact: EditedArtifact,
    reference: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Plain AdaIN artifact (import-vgg) to measure against")
    ],
    bound: Annotated[
        float, typer.Option(min=0.5, max=10.0, help="Largest median content ratio to plain AdaIN a painting may cost")
    ],
    manners: Annotated[
        str | None,
        typer.Option(
            help="Manners tried, comma-separated, ascending through 0 (below 0: a softer alpha; default "
            "-0.4,-0.2,0,0.2,…,0.8); give it as --manners=-0.4,…"
        ),
    ] = None,
    out: OutOption = None,
    version: VersionOption = None,
) -> None:
    """Give each painting its own manner (models/style/own_manner.py): the reference decoder and photos go in."""
    from models.artifact import ArtifactError
    from models.style.importer import attach_own_manner, copy_as_version, plan_own_manner
    from models.style.own_manner import MANNERS, SOFTEST, valid_grid

    grid = tuple(_numbers(manners, SOFTEST, 1.0, "manners")) if manners else MANNERS
    if not valid_grid(grid):
        raise typer.BadParameter(f"--manners must ascend through 0, from {SOFTEST:g} to 1, not {manners!r}")
    try:  # before anything is written: a refusal leaves no copy behind
        plan_own_manner(artifact, reference, bound=bound, manners=grid)
    except ArtifactError as error:
        raise typer.BadParameter(str(error)) from error
    if out is not None:
        artifact = copy_as_version(artifact, out, version or out.name)
    manifest = attach_own_manner(artifact, reference, bound, manners=grid)
    entry = manifest.hyperparameters["decoder_matching"]["own_manner"]
    console.print(f"{manifest.name}/{manifest.version}: own_manner {entry}")


def import_adain(
    vgg: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The release's vgg_normalised.pth")],
    decoder: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The release's decoder.pth")],
    out_dir: Annotated[Path, typer.Argument(help="Artifact folder to write")],
    name: str = "adain",
    version: str = "release",
    vgg_sha256: Annotated[str | None, typer.Option(help="Refuse vgg_normalised.pth unless it has this sha256")] = None,
    decoder_sha256: Annotated[str | None, typer.Option(help="Refuse decoder.pth unless it has this sha256")] = None,
    half: Annotated[bool, typer.Option(help="Store float16 weights (half the size)")] = False,
) -> None:
    """Convert the AdaIN authors' released weights into an artifact folder."""
    from models.style.importer import import_adain as convert

    expected = {role: digest for role, digest in (("vgg", vgg_sha256), ("decoder", decoder_sha256)) if digest}
    manifest = convert(vgg, decoder, out_dir, name, version, expected, half=half, command=invoked_command())
    console.print(f"imported {manifest.name}/{manifest.version} into {out_dir}")


def gallery(
    corpus: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="The style corpus's paintings folder")],
    out_dir: Annotated[Path, typer.Argument(help="Artifact folder to write")],
    name: str = "style-gallery",
    version: str = "v3",
) -> None:
    """Build the style gallery: the procedural textures plus public-domain paintings re-encoded small."""
    from models.style.paintings import make_painting_gallery

    manifest = make_painting_gallery(corpus, out_dir, name, version)
    console.print(f"wrote {manifest.name}/{manifest.version} ({len(manifest.gallery)} styles) into {out_dir}")
