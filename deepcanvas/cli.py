"""``deepcanvas detect | classify | stylize | styles``: the client on the command line.

A readable table by default, ``--json`` for scripts. These commands import the client only (no torch,
no server packages), so they also run as ``python -m deepcanvas`` where only the client is installed.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deepcanvas.calls import Tile
from deepcanvas.client import DEFAULT_URL, Client, Method, checked_url
from deepcanvas.errors import APIError, ClientError, InvalidURL, TLSError, UsageError
from deepcanvas.schemas import Box, ModelRef, StyleInfo

client_cli = typer.Typer(help="Call a DeepCanvas service: detect and classify faces, stylize photos.")
console = Console()


def print_error(label: str, message: str) -> None:
    """``label: message`` on stderr, the label in red; one line however long (rich wraps at 80 columns where
    stderr is not a terminal), and the message as it is (a ``[...]`` in it is text, not markup)."""
    Console(stderr=True, soft_wrap=True).print(f"[red]{label}[/red]: {escape(message)}", highlight=False)


def valid_url(url: str) -> str:
    """``--url``: one a request can go to (``Client``'s own check), refused as a usage error before any work; click
    names ``DEEPCANVAS_URL`` beside ``--url``, since the value may have come from either."""
    try:
        return checked_url(url)
    except InvalidURL as error:
        raise typer.BadParameter(str(error)) from error


CONNECTION_PANEL = "Connection (every command that calls the service)"
UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="DEEPCANVAS_URL",
        callback=valid_url,
        help="The service's base URL (http:// or https://)",
        rich_help_panel=CONNECTION_PANEL,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="DEEPCANVAS_API_KEY",
        help="The key of a service started with DEEPCANVAS_API_KEYS (prefer the variable: an option shows in ps)",
        rich_help_panel=CONNECTION_PANEL,
    ),
]
TimeoutOption = Annotated[
    float, typer.Option(min=0.1, help="Seconds to wait for each answer", rich_help_panel=CONNECTION_PANEL)
]
RetriesOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Times to send a call again after a refused connection, or after a 503, 502 or 429 when the call is "
        "safe to repeat (waiting its Retry-After); 0: never",
        rich_help_panel=CONNECTION_PANEL,
    ),
]
CaBundleOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        exists=True,
        help="Trust the CAs in this PEM file (a private CA, or a self-signed service's own certificate) instead "
        "of the default ones; SSL_CERT_FILE does the same for every command",
        rich_help_panel=CONNECTION_PANEL,
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="INSECURE, for tests only: do not verify the service's TLS certificate (anyone on the network path "
        "can read and change the calls)",
        rich_help_panel=CONNECTION_PANEL,
    ),
]


@dataclass(frozen=True)
class Connection:
    """How a command reaches the service: what ``service_command`` collects from the options every such command
    takes, so none lacks one and each means the same in every command."""

    url: str = DEFAULT_URL
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    ca_bundle: Path | None = None
    insecure: bool = False

    def verify(self) -> bool | Path:
        """``Client``'s ``verify``: True leaves the default trust (and ``SSL_CERT_FILE``) to httpx."""
        return False if self.insecure else (self.ca_bundle or True)


CONNECTION_OPTIONS: dict[str, Any] = {  # name: its option (the type alias above); the default comes from Connection
    "url": UrlOption,
    "api_key": ApiKeyOption,
    "timeout": TimeoutOption,
    "retries": RetriesOption,
    "ca_bundle": CaBundleOption,
    "insecure": InsecureOption,
}


def service_command(timeout: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command that calls the service, given the connection options (``CONNECTION_OPTIONS``) after its own, and
    called with them as one ``connection`` argument: defined here once, so every command takes the same ones.

    ``timeout`` is the command's default ``--timeout`` (a painting takes longer than the gallery's list).
    """

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "connection"]
        defaults = {field.name: field.default for field in fields(Connection)} | {"timeout": timeout}
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=option, default=defaults[name])
            for name, option in CONNECTION_OPTIONS.items()
        ]

        @functools.wraps(command)
        def run(**options: Any) -> None:
            connection = Connection(**{name: options.pop(name) for name in CONNECTION_OPTIONS})
            if connection.insecure and connection.ca_bundle is not None:
                raise typer.BadParameter("give --ca-bundle or --insecure, not both", param_hint="--insecure")
            command(connection=connection, **options)

        run.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
        return run

    return decorate


# Not "instead of a table": verify, enrol and add-faces print a line.
JsonOption = Annotated[bool, typer.Option("--json", help="Print the service's JSON answer instead of text")]
PhotoArgument = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A JPEG, PNG, WebP, BMP or GIF")]
PAINTING_SUFFIXES = (".png", ".jpg", ".jpeg")


def writable_file(path: Path | None) -> Path | None:
    """An output file in a folder that exists and may be written: checked before the service does any work."""
    if path is None:
        return None
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; name a file in it")
    if not path.parent.is_dir():
        raise typer.BadParameter(f"folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"{path} cannot be written")
    return path


def drawing_file(path: Path | None) -> Path | None:
    """``--draw``: a writable file whose extension names an image format Pillow writes."""
    from PIL import Image

    path = writable_file(path)
    if path is not None and path.suffix.lower() not in Image.registered_extensions():
        raise typer.BadParameter(f"{path.name}: name an image file, such as boxes.jpg or boxes.png")
    return path


def painting_file(path: Path) -> Path:
    """``--out`` of ``stylize``: a writable .png, .jpg or .jpeg (the service encodes one of those two)."""
    if path.suffix.lower() not in PAINTING_SUFFIXES:
        raise typer.BadParameter(f"{path.name}: name a .png file, or .jpg for JPEG")
    checked = writable_file(path)
    assert checked is not None
    return checked


def write_or_fail(out: Path, write: Callable[[], object]) -> None:
    """Run ``write``; a file system error (a full disk, a permission) ends the command with exit status 1."""
    try:
        write()
    except OSError as error:
        print_error("error", f"cannot write {out}: {error.strerror or error}")
        raise typer.Exit(1) from error


def write_drawing(photo: Path, boxes: Sequence[tuple[Box, str, float]], out: Path) -> None:
    """``--draw``: the photo with ``boxes`` (box, label, score) written to ``out``."""
    from deepcanvas.drawing import draw_boxes

    write_or_fail(out, lambda: draw_boxes(photo, boxes, out))


DrawOption = Annotated[
    Path | None,
    typer.Option(
        "--draw", callback=drawing_file, help="Also write the photo with its boxes and labels here (e.g. out.jpg)"
    ),
]
ConfOption = Annotated[float | None, typer.Option(min=0, max=1, help="Minimum score; default: the service's")]
IouOption = Annotated[
    float | None,
    typer.Option(min=0, max=1, help="Overlap (IoU) above which boxes of one face merge; default: the model's"),
]
MaxDetOption = Annotated[int | None, typer.Option(min=1, max=1000, help="Most boxes returned")]
ImgszOption = Annotated[
    int | None, typer.Option(min=32, max=1920, help="Inference size in pixels (YOLO detectors; RFB ignores it)")
]
MinSizeOption = Annotated[
    float | None,
    typer.Option(
        min=0, max=10000, help="Smallest face returned, in the photo's pixels (0: every box); default: the service's"
    ),
]
TileOption = Annotated[  # a choice, as the API's: anything else is a usage error before the photo is sent
    Tile | None,
    typer.Option(
        help="Also read a large photo as overlapping tiles (auto: above the model's size); default: the model's"
    ),
]


@contextmanager
def _client(connection: Connection, admin_token: str | None = None) -> Iterator[Client]:
    """A client for ``connection`` whose errors end the command with their explanation on stderr: exit status 2 for
    what is wrong on the command line (a URL or CA bundle the client refuses, an admin call without a token), 1 for
    what went wrong with the call (the service's error answer, no answer, a certificate it does not trust)."""
    if connection.insecure:
        print_error("warning", "--insecure: the service's TLS certificate is not verified")
    try:
        with Client(
            connection.url,
            timeout=connection.timeout,
            retries=connection.retries,
            admin_token=admin_token,
            api_key=connection.api_key,
            verify=connection.verify(),
        ) as client:
            yield client
    except APIError as error:
        retry = f" (retry after {error.retry_after:g} s)" if error.retry_after is not None else ""
        print_error(f"error {error.status}", f"{error.detail}{retry}")
        raise typer.Exit(1) from error
    except (InvalidURL, UsageError) as error:  # refused before anything was sent: the command line's fault
        print_error("error", str(error))
        raise typer.Exit(2) from error
    except TLSError as error:
        print_error("error", f"{error} (--ca-bundle PATH trusts a private CA or a self-signed certificate)")
        raise typer.Exit(1) from error
    except ClientError as error:  # an unreachable service, an answer that is not the service's
        print_error("error", str(error))
        raise typer.Exit(1) from error


def _print_json(answer: BaseModel, exclude: set[str] | None = None) -> None:
    sys.stdout.write(answer.model_dump_json(indent=2, exclude=exclude) + "\n")


def _faces(count: int) -> str:
    return f"{count} face" if count == 1 else f"{count} faces"


class WrittenPainting(BaseModel):
    """``stylize --json``: the file written and the style model that painted it."""

    path: str
    width: int
    height: int
    media_type: str  # as the service encoded it: image/png or image/jpeg
    bytes: int
    model: ModelRef
    nst_steps: int | None  # method=nst: the optimiser steps its time budget allowed; null for adain


def _credit(style: StyleInfo) -> str:
    """A painting's artist and year ("Vincent van Gogh, 1889"); empty for a generated texture."""
    return ", ".join(part for part in (style.artist, style.year) if part)


def _box(box: tuple[float, float, float, float] | None) -> str:
    return "whole image" if box is None else ", ".join(f"{v:.0f}" for v in box)


@service_command(timeout=60.0)
def detect(
    connection: Connection,
    photo: PhotoArgument,
    conf: ConfOption = None,
    iou: IouOption = None,
    max_det: MaxDetOption = None,
    imgsz: ImgszOption = None,
    min_size: MinSizeOption = None,
    tile: TileOption = None,
    landmarks: Annotated[
        bool, typer.Option("--landmarks", help="Add each face's 5 landmarks (eyes, nose, mouth corners)")
    ] = False,
    draw: DrawOption = None,
    json: JsonOption = False,
) -> None:
    """Detect faces in a photo: boxes in its pixels, with scores."""
    with _client(connection) as client:
        answer = client.detect(photo, conf, iou, max_det, imgsz, min_size, tile, landmarks)
    if draw:
        write_drawing(photo, [(d.box, d.label, d.score) for d in answer.detections], draw)
    if json:
        return _print_json(answer)
    columns = ["#", "box x1, y1, x2, y2", "label", "score", *(["landmarks x, y"] if landmarks else [])]
    table = Table(*columns, title=f"{photo.name}: {_faces(len(answer.detections))}")
    for index, found in enumerate(answer.detections, 1):
        points = [" ".join(f"{x:.0f},{y:.0f}" for x, y in found.landmarks or [])] if landmarks else []
        table.add_row(str(index), _box(found.box), found.label, f"{found.score:.3f}", *points)
    console.print(table)
    console.print(f"{answer.image.width}×{answer.image.height} px, {answer.model.name} {answer.model.version}")


@service_command(timeout=60.0)
def classify(
    connection: Connection,
    photo: PhotoArgument,
    detect_faces: Annotated[
        bool, typer.Option(help="Detect faces first, or classify the whole photo as one face crop")
    ] = True,
    conf: ConfOption = None,
    iou: IouOption = None,
    max_det: MaxDetOption = None,
    imgsz: ImgszOption = None,
    min_size: MinSizeOption = None,
    min_score: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Label a face 'unknown' when its score is below this")
    ] = None,
    tile: TileOption = None,
    draw: DrawOption = None,
    json: JsonOption = False,
) -> None:
    """Classify every face in a photo (or the whole photo as one face): label and probabilities.

    The detection options (--conf, --iou, --max-det, --imgsz, --min-size, --tile) are /detect's.
    """
    with _client(connection) as client:
        answer = client.classify(photo, detect_faces, conf, iou, max_det, imgsz, min_score, tile, min_size)
    if draw:
        write_drawing(photo, [(f.box, f.label, f.score) for f in answer.faces if f.box is not None], draw)
    if json:
        return _print_json(answer)
    labels = sorted({label for face in answer.faces for label in face.probabilities})
    table = Table(
        "#", "box x1, y1, x2, y2", "label", "score", *labels, title=f"{photo.name}: {_faces(len(answer.faces))}"
    )
    for index, face in enumerate(answer.faces, 1):
        probabilities = [f"{face.probabilities.get(label, 0):.3f}" for label in labels]
        table.add_row(str(index), _box(face.box), face.label, f"{face.score:.3f}", *probabilities)
    console.print(table)
    console.print(f"{answer.model.name} {answer.model.version}")


@service_command(timeout=300.0)
def stylize(
    connection: Connection,
    photo: PhotoArgument,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", callback=painting_file, help="Where to write the painting (.png, or .jpg for JPEG)"
        ),
    ],
    style_name: Annotated[
        list[str] | None, typer.Option("--style-name", help="A gallery style (see `styles`); repeat to mix")
    ] = None,
    style: Annotated[
        list[Path] | None, typer.Option("--style", exists=True, dir_okay=False, help="A style image; repeat to mix")
    ] = None,
    weights: Annotated[list[float] | None, typer.Option("--weight", help="One per style, in order")] = None,
    alpha: Annotated[
        float | None, typer.Option(min=0, max=1, help="0: the photo as the decoder redraws it (close, not identical)")
    ] = None,
    preserve_color: Annotated[bool, typer.Option(help="Keep the photo's colours")] = False,
    method: Annotated[Method, typer.Option(help="adain (fast) or nst (slow, needs the torch backend)")] = "adain",
    max_side: Annotated[int | None, typer.Option(min=32, help="Bound on the output's longer side")] = None,
    max_seconds: Annotated[float | None, typer.Option(min=1.0, help="--method nst: its time budget, 1 s or more")] = (
        None
    ),
    manner: Annotated[
        float | None, typer.Option(min=0, max=1, help="How strongly each painting's own palette and marks are kept")
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print what was written (path, size, model) as JSON instead of a line")
    ] = False,
) -> None:
    """Repaint a photo in a gallery style or an uploaded one, and write the image."""
    if not style_name and not style:
        raise typer.BadParameter("give --style-name NAME (see `deepcanvas styles`) or --style IMAGE")
    if style_name and style:
        raise typer.BadParameter("give --style-name or --style, not both (the service mixes one kind only)")
    encoding: Literal["png", "jpeg"] = "jpeg" if out.suffix.lower() in (".jpg", ".jpeg") else "png"
    with _client(connection) as client:
        painted = client.stylize(
            photo,
            style=list(style or []),
            style_name=list(style_name or []),
            style_weights=weights,
            alpha=alpha,
            preserve_color=preserve_color,
            method=method,
            max_side=max_side,
            format=encoding,
            max_seconds=max_seconds,
            manner=manner,
        )
    write_or_fail(out, lambda: painted.save(out))
    size = painted.image().size
    if json:
        written = WrittenPainting(
            path=str(out),
            width=size[0],
            height=size[1],
            media_type=painted.media_type,
            bytes=len(painted.data),
            model=painted.model,
            nst_steps=painted.nst_steps,
        )
        return _print_json(written)
    steps = f", {painted.nst_steps} NST steps" if painted.nst_steps is not None else ""
    console.print(f"wrote {out} ({size[0]}×{size[1]} px, {painted.model.name} {painted.model.version}{steps})")


@service_command(timeout=30.0)
def styles(connection: Connection, json: JsonOption = False) -> None:
    """The service's style gallery: names for stylize --style-name, each painting with its artist and year."""
    with _client(connection) as client:
        answer = client.styles()
    if json:  # the service's answer: an older service says nothing of nst, and neither does this
        return _print_json(answer, exclude={"nst"} if answer.nst is None else None)
    table = Table("name", "title", "by", "description", title=f"{answer.gallery.name} {answer.gallery.version}")
    for entry in answer.styles:
        table.add_row(entry.name, entry.title, _credit(entry), entry.description)
    console.print(table)
    if answer.nst is not None:  # an older service does not say
        nst = answer.nst
        limits = f"up to {nst.max_seconds:g} s a painting, at most {nst.max_side} px"
        console.print(f"--method nst: {limits}" if nst.available else f"--method nst: not here ({nst.reason})")


COMMANDS: dict[str, Callable[..., None]] = {
    "detect": detect,
    "classify": classify,
    "stylize": stylize,
    "styles": styles,
}
for _name, _command in COMMANDS.items():
    client_cli.command(_name)(_command)
