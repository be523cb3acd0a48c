"""``deepcanvas identities … | identify | verify``: the identity calls on the command line (client only).

``identities import-lfw ROOT`` enrols people from a folder of ``ROOT/<First_Last>/*.jpg`` (the LFW layout)
through the API, for demos and benchmarks (``deepcanvas.lfw_import``): a photo or person the service refuses is
reported and the import goes on; a failure of the service stops it, and a re-run goes on from there.
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
    print_error,
    service_command,
    write_drawing,
)
from deepcanvas.lfw_import import Imported, Refused, import_folders
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
SamePersonOption = Annotated[
    bool,
    typer.Option(
        "--same-person-check/--no-same-person-check",
        help="Refuse photos whose faces look like different people (the service's default); --no-same-person-check "
        "stores them as one person anyway",
    ),
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
    same_person_check: SamePersonOption = True,
    json: JsonOption = False,
) -> None:
    """Enrol a person: a name and photos with exactly one face each."""
    with _client(connection, admin_token) as client:
        made = client.enrol(name, list(photos), same_person_check)
    _print_json(made) if json else console.print(f"enrolled {made.name} as {made.id} ({made.faces} faces)")


@identities_cli.command("add-faces")
@service_command(timeout=120.0)
def add_faces(
    connection: Connection,
    identity_id: str,
    photos: PhotosArgument,
    admin_token: TokenOption,
    same_person_check: SamePersonOption = True,
    json: JsonOption = False,
) -> None:
    """Add photos of an enrolled person."""
    with _client(connection, admin_token) as client:
        found = client.add_faces(identity_id, list(photos), same_person_check)
    _print_json(found) if json else console.print(f"{found.name} ({found.id}) now has {found.faces} faces")


class Deleted(BaseModel):
    """``identities delete --json``: the service answers 204 with no body; this says what was done."""

    id: str
    deleted: bool = True


@identities_cli.command("delete")
@service_command(timeout=30.0)
def delete(connection: Connection, identity_id: str, admin_token: TokenOption, json: JsonOption = False) -> None:
    """Delete a person: name and descriptors erased, never matched again."""
    with _client(connection, admin_token) as client:
        client.delete_identity(identity_id)
    _print_json(Deleted(id=identity_id)) if json else console.print(f"deleted {identity_id}")


def _say_refused(refusal: Refused) -> None:
    # a photo not read here or refused by /detect; an enrolment, a person (its detail names the photo when it is one)
    if refusal.call == "read":
        return print_error("skipped", f"{refusal.folder}/{refusal.photos[0]}: {refusal.detail}")
    what = f"{refusal.folder}/{refusal.photos[0]}" if refusal.call == "detect" else f"enrolling {refusal.folder}"
    print_error("refused", f"{what}: error {refusal.status}: {refusal.detail}")


def _summary(report: Imported, per_person: int) -> str:
    """One line: how many were enrolled, skipped (too few one-face photos), refused and enrolled already."""
    enrolled = len(report.enrolled)
    line = f"enrolled {enrolled} {'person' if enrolled == 1 else 'people'} from {report.root}"
    line += f"; skipped {len(report.skipped)} without {per_person} one-face photos"
    photos = sum(r.call != "enrol" for r in report.refused)  # not read here, or refused by /detect
    counts = [(len(report.refused) - photos, "enrolment"), (photos, "photo")]
    if report.refused:
        line += f"; refused {' and '.join(_count(n, thing) for n, thing in counts if n)} (each said above)"
    if report.already_enrolled:
        line += f"; {len(report.already_enrolled)} enrolled already, not again"
    return line


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


@identities_cli.command("import-lfw")
@service_command(timeout=120.0)
def import_lfw(
    connection: Connection,
    root: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="ROOT/<First_Last>/*.jpg (LFW layout)")],
    admin_token: TokenOption,
    per_person: Annotated[int, typer.Option(min=1, max=20, help="Photos enrolled per person")] = 1,
    people: Annotated[int | None, typer.Option(min=1, help="Enrol at most this many people (folder order)")] = None,
    same_person_check: SamePersonOption = True,
    json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the people enrolled, the folders skipped, refused or enrolled already, and where a stopped "
            "import stopped, as JSON instead of a line",
        ),
    ] = False,
) -> None:
    """Enrol LFW people from a folder through the API (for demos and benchmarks; never ship the result).

    A photo or person the service refuses is reported and skipped; a failure of the service stops the import (exit
    1). A person whose name is enrolled already is not enrolled again, so a re-run goes on where one stopped.
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir())[: people or None]
    report = Imported(root=str(root))
    try:
        with _client(connection, admin_token) as client:
            import_folders(client, folders, per_person, report, _say_refused, same_person_check)
    except typer.Exit:  # the error is said; then how far the import came, so that a re-run can go on from there
        if report.stopped is not None:
            where = f"at {report.stopped.folder}" if report.stopped.folder else "before the first folder"
            print_error("stopped", f"{where}: {_summary(report, per_person)}; run it again to go on from there")
            if json:
                _print_json(report)
        raise
    if json:
        return _print_json(report)
    console.print(_summary(report, per_person))


@service_command(timeout=60.0)
def identify(
    connection: Connection,
    photo: PhotoArgument,
    top_k: Annotated[int | None, typer.Option(min=1, max=100, help="Candidates per face")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "--min-similarity",  # what it is here; verify's --threshold is a distance
            min=-1,
            max=1,
            help="Similarity a name needs (the API's threshold); default: the calibrated one, which may be raised, "
            "not lowered",
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
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            "--max-distance",  # what it is here; identify's --threshold is a similarity
            min=0,
            max=2,
            help="Largest distance still 'same' (the API's threshold)",
        ),
    ] = None,
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
