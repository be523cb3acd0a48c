"""``deepcanvas identities import-lfw``'s work: enrol people from a folder in the LFW layout through the API.

``ROOT/<First_Last>/*.jpg``: each folder is a person, named by the folder with spaces for its ``_``, enrolled from
its first ``per_person`` photos in which /detect finds exactly one face.

What the service refuses about one photo or one person (``REFUSED``: a corrupt or too large photo, a photo the
enrolment finds no face or several faces in, a name it refuses) is reported and the import goes on with the next
photo or person, which may pass; so does a photo this machine cannot read (a broken link, no permission), which
a re-run would stop at again. Anything else stops it, since every later call would fail alike or fares better
in a while: the service's own failure (a 5xx; a 502, 503 or 429 the client's retries did not get past), a 504 or
no answer, a refused admin token or API key; ``Stopped`` says where.

A re-run goes on where a stopped one ended: a person whose name is already enrolled (``GET /identities``) is not
enrolled again. The service lets two people share a name, so without that a re-run would enrol everyone before the
stop twice; and an enrolment answered 504 (or 502), which may have been saved, is found there when it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from deepcanvas.client import Client
from deepcanvas.errors import APIError, ClientError, ImageNotReadable
from deepcanvas.schemas import IdentityInfo

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
# What the service answers about the photo or person sent (a corrupt, too large or unreadable photo; no face or
# several in a photo to enrol, photos that look like different people, a name it refuses): another photo or person
# may pass. It has no 409 for a name already enrolled (names may repeat). Anything else (a wrong admin token or API
# key's 401/403, a 404 from another service, a 5xx) would be the same for every photo.
REFUSED = frozenset({400, 413, 415, 422})
PAGE = 1000  # the most GET /identities answers at once


class Refused(BaseModel):
    """A photo this machine could not read or /detect refused, or an enrolment the service refused: where, and why."""

    folder: str
    photos: list[str]  # file names in the folder: the photo not read or /detect refused, or those enrolment sent
    call: Literal["read", "detect", "enrol"]  # read: this machine could not read the photo (nothing was sent)
    status: int | None  # the service's answer; None for a photo not read
    detail: str


class Stopped(BaseModel):
    """Why the import stopped before its last folder, and at which (None: before the first, reading the gallery)."""

    folder: str | None
    error: str


class Imported(BaseModel):
    """``identities import-lfw --json``: who was enrolled, the folders skipped (too few one-face photos), what the
    service refused, the folders whose name was enrolled already (not enrolled again), and where it stopped."""

    root: str
    enrolled: list[IdentityInfo] = []
    skipped: list[str] = []
    refused: list[Refused] = []
    already_enrolled: list[str] = []
    stopped: Stopped | None = None


def person_name(folder: Path) -> str:
    """The name a folder enrols, as the service keeps it (without surrounding spaces)."""
    return folder.name.replace("_", " ").strip()


def enrolled_names(client: Client) -> set[str]:
    """The names enrolled so far, read a page at a time."""
    names: set[str] = set()
    offset = 0
    while True:
        page = client.identities(PAGE, offset)
        names |= {identity.name for identity in page.identities}
        offset += len(page.identities)
        if not page.identities or offset >= page.total:
            return names


def _refused(
    folder: Path, photos: list[Path], call: Literal["read", "detect", "enrol"], error: APIError | ImageNotReadable
) -> Refused:
    """The service's refusal (its status and detail), or a photo this machine could not read (no status)."""
    status, detail = (error.status, error.detail) if isinstance(error, APIError) else (None, str(error))
    return Refused(folder=folder.name, photos=[p.name for p in photos], call=call, status=status, detail=detail)


def enrol_from_folder(
    client: Client,
    folder: Path,
    per_person: int,
    refused: Callable[[Refused], None],
    same_person_check: bool = True,
) -> IdentityInfo | Refused | None:
    """Enrol ``folder``'s person from its first photos with one face: who was enrolled, the enrolment the service
    refused, or None when the folder has too few such photos. ``refused`` is told of each photo /detect refused.
    ``same_person_check`` false: the service stores the photos as one person even when they look like several (a
    labelled data set whose folders are trusted)."""
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and not p.is_dir())
    chosen: list[Path] = []
    for photo in photos:
        try:
            faces = len(client.detect(photo).detections)
        except APIError as error:
            if error.status not in REFUSED:
                raise
            refused(_refused(folder, [photo], "detect", error))
            continue
        except ImageNotReadable as error:  # here, not the service: a re-run would stop at it again
            refused(_refused(folder, [photo], "read", error))
            continue
        if faces == 1:
            chosen.append(photo)
        if len(chosen) == per_person:
            try:
                return client.enrol(person_name(folder), chosen, same_person_check)
            except APIError as error:
                if error.status not in REFUSED:
                    raise
                return _refused(folder, chosen, "enrol", error)
    return None


def import_folders(
    client: Client,
    folders: Iterable[Path],
    per_person: int,
    report: Imported,
    refused: Callable[[Refused], None],
    same_person_check: bool = True,
) -> None:
    """Enrol each folder's person into ``report``, but for names already enrolled; ``refused`` is told of each
    refusal as it comes. An error that stops the import is raised, ``report.stopped`` saying where."""

    def note(refusal: Refused) -> None:
        report.refused.append(refusal)
        refused(refusal)

    folder: Path | None = None
    try:
        names = enrolled_names(client)
        for folder in folders:
            if person_name(folder) in names:
                report.already_enrolled.append(folder.name)
                continue
            outcome = enrol_from_folder(client, folder, per_person, note, same_person_check)
            if isinstance(outcome, IdentityInfo):
                report.enrolled.append(outcome)
                names.add(outcome.name)
            elif isinstance(outcome, Refused):
                note(outcome)
            else:
                report.skipped.append(folder.name)
    except ClientError as error:
        report.stopped = Stopped(folder=folder.name if folder else None, error=str(error))
        raise
