"""``deepcanvas identities … | identify | verify``: the identity calls on the command line (client only).

``identities import-lfw ROOT`` enrols people from a folder of ``ROOT/<First_Last>/*.jpg`` (the LFW layout)
through the API, for demos and benchmarks: a photo the service refuses (no face, several faces) is skipped
and the person's next photo tried.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Column, Table

from deepcanvas.cli import (
    Connection,
    JsonOption,
    PhotoArgument,
    _box,
    _client,
    _faces,
    _print_json,
    console,
    drawing_file,
    service_command,
    write_drawing,
)
from deepcanvas.client import Client
from deepcanvas.errors import APIError
from deepcanvas.schemas import IdentityInfo

identities_cli = typer.Typer(help="Enrol, list and delete the people /identify can name (admin token).")
# Required (every identities command is an admin call): a missing one is click's usage error naming the option,
# not the client's, which names its own admin_token argument.
TokenOption = Annotated[
    str,
    typer.Option(
        "--admin-token", envvar="DEEPCANVAS_ADMIN_TOKEN", help="The service's admin token (its DEEPCANVAS_ADMIN_TOKEN)"
    ),
]
PhotosArgument = Annotated[
    list[Path], typer.Argument(exists=True, dir_okay=False, help="Photos with exactly one face each")
]


def _identity_table(identities: list[IdentityInfo], title: str) -> Table:
    # The id whole on one line, however narrow the terminal, so it can be copied into `show` or `delete`.
    widest = max((len(i.id) for i in identities), default=2)
    id_column = Column("id", no_wrap=True, overflow="ignore", min_width=widest)
    table = Table(id_column, "name", "faces", "stale faces", "enrolled", title=title)
    for i in identities:
        table.add_row(i.id, i.name, str(i.faces), str(i.stale_faces), f"{i.created_at:%Y-%m-%d %H:%M}")
    return table


@identities_cli.command("list")
@service_command(timeout=30.0)
def list_identities(
    connection: Connection,
    admin_token: TokenOption,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="People per page")] = 100,
    offset: Annotated[int, typer.Option(min=0, max=10_000_000, help="People to skip (oldest first)")] = 0,
    json: JsonOption = False,
) -> None:
    """Enrolled people, oldest first, a page at a time."""
    with _client(connection, admin_token) as client:
        page = client.identities(limit, offset)
    if json:
        return _print_json(page)
    end = offset + len(page.identities)
    console.print(_identity_table(page.identities, f"{offset + 1 if page.identities else 0}–{end} of {page.total}"))


@identities_cli.command("show")
@service_command(timeout=30.0)
def show(connection: Connection, identity_id: str, admin_token: TokenOption, json: JsonOption = False) -> None:
    """One enrolled person."""
    with _client(connection, admin_token) as client:
        found = client.identity(identity_id)
    _print_json(found) if json else console.print(_identity_table([found], found.name))


@identities_cli.command("enrol")
@service_command(timeout=120.0)
def enrol(
    connection: Connection,
    name: str,
    photos: PhotosArgument,
    admin_token: TokenOption,
    json: JsonOption = False,
) -> None:
    """Enrol a person: a name and photos with exactly one face each."""
    with _client(connection, admin_token) as client:
        made = client.enrol(name, list(photos))
    _print_json(made) if json else console.print(f"enrolled {made.name} as {made.id} ({made.faces} faces)")


@identities_cli.command("add-faces")
@service_command(timeout=120.0)
def add_faces(
    connection: Connection,
    identity_id: str,
    photos: PhotosArgument,
    admin_token: TokenOption,
    json: JsonOption = False,
) -> None:
    """Add photos of an enrolled person."""
    with _client(connection, admin_token) as client:
        found = client.add_faces(identity_id, list(photos))
    _print_json(found) if json else console.print(f"{found.name} ({found.id}) now has {found.faces} faces")


class Deleted(BaseModel):
    """``identities delete --json``: the service answers 204 with no body; this says what was done."""

    id: str
    deleted: bool = True


class Imported(BaseModel):
    """``identities import-lfw --json``: who was enrolled, and the folders skipped (too few one-face photos)."""

    root: str
    enrolled: list[IdentityInfo]
    skipped: list[str]


@identities_cli.command("delete")
@service_command(timeout=30.0)
def delete(connection: Connection, identity_id: str, admin_token: TokenOption, json: JsonOption = False) -> None:
    """Delete a person: name and descriptors erased, never matched again."""
    with _client(connection, admin_token) as client:
        client.delete_identity(identity_id)
    _print_json(Deleted(id=identity_id)) if json else console.print(f"deleted {identity_id}")


# What /detect answers about the photo itself (corrupt, too large, not an image, unreadable): that photo is skipped.
# Anything else (a wrong API key's 401/403, a 404 from another service, a 5xx) would be the same for every photo.
PHOTO_REFUSED = frozenset({400, 413, 415, 422})


def _enrol_from_folder(client: Client, folder: Path, per_person: int) -> IdentityInfo | None:
    """Enrol ``folder``'s person from its first photos with one face; None if it has too few."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen: list[Path] = []
    for photo in photos:
        try:
            faces = len(client.detect(photo).detections)
        except APIError as error:
            if error.status not in PHOTO_REFUSED:
                raise
            continue  # not an image the service reads: skip it
        if faces == 1:
            chosen.append(photo)
        if len(chosen) == per_person:
            return client.enrol(folder.name.replace("_", " "), chosen)
    return None


@identities_cli.command("import-lfw")
@service_command(timeout=120.0)
def import_lfw(
    connection: Connection,
    root: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="ROOT/<First_Last>/*.jpg (LFW layout)")],
    admin_token: TokenOption,
    per_person: Annotated[int, typer.Option(min=1, max=20, help="Photos enrolled per person")] = 1,
    people: Annotated[int | None, typer.Option(min=1, help="Enrol at most this many people (folder order)")] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Print the people enrolled and the folders skipped as JSON instead of a line")
    ] = False,
) -> None:
    """Enrol LFW people from a folder through the API (for demos and benchmarks; never ship the result)."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())[: people or None]
    report = Imported(root=str(root), enrolled=[], skipped=[])
    with _client(connection, admin_token) as client:
        for folder in folders:
            made = _enrol_from_folder(client, folder, per_person)
            if made:
                report.enrolled.append(made)
            else:
                report.skipped.append(folder.name)
    if json:
        return _print_json(report)
    enrolled, skipped = len(report.enrolled), len(report.skipped)
    console.print(f"enrolled {enrolled} people from {root}; skipped {skipped} without {per_person} one-face photos")


@service_command(timeout=60.0)
def identify(
    connection: Connection,
    photo: PhotoArgument,
    top_k: Annotated[int | None, typer.Option(min=1, max=100, help="Candidates per face")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=-1,
            max=1,
            help="Similarity a name needs; default: the calibrated one, which may be raised, not lowered",
        ),
    ] = None,
    draw: Annotated[
        Path | None, typer.Option("--draw", callback=drawing_file, help="Also write the photo with names drawn here")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Who is in this photo: each face's enrolled identity, or unknown."""
    with _client(connection) as client:
        answer = client.identify(photo, top_k=top_k, threshold=threshold)
    named = [
        (f.box, f.identity.name if f.identity else "unknown", f.identity.similarity if f.identity else 0.0)
        for f in answer.faces
    ]
    if draw:
        write_drawing(photo, named, draw)
    if json:
        return _print_json(answer)
    title = f"{photo.name}: {_faces(len(answer.faces))}"  # "0 faces": a photo without one is an answer too
    table = Table("#", "box x1, y1, x2, y2", "identity", "similarity", "candidates", title=title)
    for index, (face, (_, name, similarity)) in enumerate(zip(answer.faces, named, strict=True), 1):
        candidates = ", ".join(f"{c.name} {c.similarity:.2f}" for c in face.candidates)
        table.add_row(str(index), _box(face.box), name, f"{similarity:.3f}" if face.identity else "", candidates)
    console.print(table)
    console.print(
        f"threshold {answer.threshold:.3f}, {answer.gallery_size} faces enrolled, "
        f"{answer.model.name} {answer.model.version}"
    )


@service_command(timeout=60.0)
def verify(
    connection: Connection,
    photo_a: PhotoArgument,
    photo_b: PhotoArgument,
    threshold: Annotated[float | None, typer.Option(min=0, max=2, help="Largest distance still 'same'")] = None,
    json: JsonOption = False,
) -> None:
    """Whether two photos show the same person (each photo's largest face)."""
    with _client(connection) as client:
        answer = client.verify(photo_a, photo_b, threshold=threshold)
    if json:
        return _print_json(answer)
    verdict = "same person" if answer.same else "different people"
    notes = [
        f"{p.name}: largest of {f.faces_found} faces"
        for p, f in ((photo_a, answer.a), (photo_b, answer.b))
        if f.largest
    ]
    console.print(
        f"{verdict}: distance {answer.distance:.3f} (threshold {answer.threshold:.3f})"
        + "".join(f"; {n}" for n in notes)
    )


COMMANDS: dict[str, Callable[..., None]] = {"identify": identify, "verify": verify}
