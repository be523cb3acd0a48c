"""``deepcanvas identities import-lfw`` (``deepcanvas.lfw_import``) against a fake service that keeps a gallery: what
the service refuses about a photo or a person is reported and the import goes on; a failure of the service stops it,
saying how far it came; a re-run does not enrol anyone twice. The real service: tests/e2e/test_identity_client_e2e.py.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

import deepcanvas.cli as cli_module
import deepcanvas.lfw_import as lfw_import
from app.cli import cli
from deepcanvas.client import Client
from tests.support.images import face_like_photo

ONE_FACE = {
    "model": {"name": "face-detector", "version": "v5"},
    "image": {"width": 64, "height": 48},
    "detections": [{"box": [1, 2, 30, 40], "score": 0.9, "label": "face"}],
}
CORRUPT = b"\xff\xd8 not the rest of a JPEG"
HIDDEN = "\u200b"  # a zero-width space, which the service refuses in a name (as it does, with this detail)
Failure = Callable[[httpx.Request], httpx.Response | None]


class Gallery:
    """The identity routes and /detect as the service answers them, with the people enrolled kept in a list.

    ``failure`` may answer a request instead (a 5xx, a 504, no answer); after it answers, what it answered is
    ``failed``. A 504 to an enrolment here comes after the person was saved, as the service's may."""

    def __init__(self, failure: Failure | None = None) -> None:
        self.names: list[str] = []
        self.failure = failure
        self.failed: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/detect":
            if CORRUPT in request.content:
                return httpx.Response(400, json={"detail": "image 'image': truncated or corrupt image"})
            return self._failed(request) or httpx.Response(200, json=ONE_FACE)
        if request.method == "GET":
            limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
            people = [self._person(i) for i in range(len(self.names))][offset : offset + limit]
            page = {"total": len(self.names), "limit": limit, "offset": offset, "identities": people}
            return httpx.Response(200, json=page)
        name = _form_field(request, "name")
        if HIDDEN in name:
            return httpx.Response(422, json={"detail": "name: contains U+200B (a zero-width character)"})
        if name.startswith("Look Alike") and _form_fields(request).get("same_person_check") != "false":
            detail = "image 'image': not the same person as the other photos (distance 0.43 > 0.41)"
            return httpx.Response(422, json={"detail": detail, "code": "different_people"})
        self.names.append(name)
        return self._failed(request) or httpx.Response(201, json=self._person(len(self.names) - 1))

    def _failed(self, request: httpx.Request) -> httpx.Response | None:
        answer = self.failure(request) if self.failure else None
        if answer is not None:
            self.failed.append(request.url.path)
        return answer

    def _person(self, index: int) -> dict[str, object]:
        when = "2026-01-02T03:04:05Z"
        name = self.names[index]
        return {"id": f"id{index}", "name": name, "faces": 1, "stale_faces": 0, "created_at": when, "updated_at": when}


def _form_field(request: httpx.Request, name: str) -> str:
    marker = f'name="{name}"\r\n\r\n'.encode()
    start = request.content.index(marker) + len(marker)
    return request.content[start : request.content.index(b"\r\n", start)].decode()


def _form_fields(request: httpx.Request) -> dict[str, str]:
    """The text fields of a multipart request (name -> value)."""
    fields = {}
    for part in request.content.split(b"--")[1:]:
        head, _, body = part.partition(b"\r\n\r\n")
        if b"filename=" not in head and b'name="' in head:
            name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
            fields[name] = body.rsplit(b"\r\n", 1)[0].decode()
    return fields


def _lfw(root: Path, people: dict[str, list[bytes]]) -> Path:
    for person, photos in people.items():
        (root / person).mkdir(parents=True)
        for index, photo in enumerate(photos):
            (root / person / f"{person}_{index:04d}.jpg").write_bytes(photo)
    return root


def _import(monkeypatch: pytest.MonkeyPatch, gallery: Gallery, root: Path, *options: str) -> Result:
    monkeypatch.setattr(cli_module, "Client", functools.partial(Client, transport=httpx.MockTransport(gallery)))
    args = ["identities", "import-lfw", str(root), "--admin-token", "t", "--retries", "0", *options]
    return CliRunner().invoke(cli, args, env={"COLUMNS": "400"})


@pytest.fixture
def photo() -> bytes:
    return face_like_photo(64, 48)


def test_a_refused_photo_and_a_refused_enrolment_are_reported_and_the_import_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    """An enrolment the service refused (422) ended the import with exit 1, the people after it never enrolled; a
    photo /detect refused was skipped without a word."""
    root = _lfw(
        tmp_path / "lfw",
        {"Ada_Lovelace": [CORRUPT, photo], f"Bad{HIDDEN}_Name": [photo], "Grace_Hopper": [photo], "Nobody": []},
    )
    gallery = Gallery()
    result = _import(monkeypatch, gallery, root, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [person["name"] for person in report["enrolled"]] == ["Ada Lovelace", "Grace Hopper"]
    assert report["skipped"] == ["Nobody"]  # too few one-face photos: not a refusal
    assert report["refused"] == [
        {
            "folder": "Ada_Lovelace",
            "photos": ["Ada_Lovelace_0000.jpg"],
            "call": "detect",
            "status": 400,
            "detail": "image 'image': truncated or corrupt image",
        },
        {
            "folder": f"Bad{HIDDEN}_Name",
            "photos": [f"Bad{HIDDEN}_Name_0000.jpg"],
            "call": "enrol",
            "status": 422,
            "detail": "name: contains U+200B (a zero-width character)",
        },
    ]
    assert "refused: Ada_Lovelace/Ada_Lovelace_0000.jpg: error 400: image 'image': truncated" in result.stderr
    assert f"refused: enrolling Bad{HIDDEN}_Name: error 422: name: contains U+200B" in result.stderr
    assert gallery.names == ["Ada Lovelace", "Grace Hopper"]

    line = _import(monkeypatch, Gallery(), tmp_path / "lfw").stdout
    assert "enrolled 2 people" in line and "skipped 1 without 1 one-face photos" in line
    assert "refused 1 enrolment and 1 photo" in line


def test_a_photo_this_machine_cannot_read_is_skipped_and_the_import_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    """A dangling link stopped the import at its folder, and every re-run stopped there again: the people after it
    were never enrolled. A directory named like a photo is not a photo."""
    root = _lfw(tmp_path / "lfw", {"Ada_Lovelace": [photo], "Grace_Hopper": [photo]})
    (root / "Ada_Lovelace" / "Ada_Lovelace_0000.jpg").unlink()
    (root / "Ada_Lovelace" / "Ada_Lovelace_0000.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "Ada_Lovelace" / "Ada_Lovelace_0001.jpg").write_bytes(photo)
    (root / "Grace_Hopper" / "folder.jpg").mkdir()
    gallery = Gallery()
    result = _import(monkeypatch, gallery, root, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert gallery.names == ["Ada Lovelace", "Grace Hopper"]  # from the photo after the broken one
    [unread] = report["refused"]
    assert (unread["folder"], unread["photos"], unread["call"], unread["status"]) == (
        "Ada_Lovelace",
        ["Ada_Lovelace_0000.jpg"],
        "read",
        None,
    )
    assert "skipped: Ada_Lovelace/Ada_Lovelace_0000.jpg: " in result.stderr


def _at_grace(status: int, path: str) -> Failure:
    def failure(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != path or b"Grace_Hopper" not in request.content:
            return None
        headers = {"Retry-After": "5"} if status == 503 else {}
        return httpx.Response(status, json={"detail": f"the service failed ({status})"}, headers=headers)

    return failure


def _unreachable_at_grace(request: httpx.Request) -> httpx.Response | None:
    if b"Grace_Hopper" in request.content:
        raise httpx.ConnectError("Connection refused")
    return None


@pytest.mark.parametrize(
    "failure, said",
    [
        (_at_grace(500, "/detect"), "error 500: the service failed (500)"),
        (_at_grace(503, "/detect"), "error 503: the service failed (503) (retry after 5 s)"),
        (_at_grace(502, "/identities"), "error 502: the service failed (502)"),
        (_at_grace(504, "/identities"), "error 504: the service failed (504)"),
        (_at_grace(401, "/detect"), "error 401: the service failed (401)"),
        (_unreachable_at_grace, "ConnectError: Connection refused"),
    ],
    ids=["500", "503", "502-enrolling", "504-enrolling", "401", "unreachable"],
)
def test_a_failure_of_the_service_stops_the_import_saying_how_far_it_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes, failure: Failure, said: str
) -> None:
    """The import stopped with the error alone: who was enrolled before it, the user could not tell."""
    root = _lfw(tmp_path / "lfw", {"Ada_Lovelace": [photo], "Grace_Hopper": [photo], "Linus_Torvalds": [photo]})
    result = _import(monkeypatch, Gallery(failure), root, "--json")
    assert result.exit_code == 1, result.output
    assert said in result.stderr
    assert "stopped: at Grace_Hopper: enrolled 1 person from" in result.stderr
    assert "run it again to go on from there" in result.stderr
    report = json.loads(result.stdout)
    assert [person["name"] for person in report["enrolled"]] == ["Ada Lovelace"]
    assert report["stopped"]["folder"] == "Grace_Hopper" and report["stopped"]["error"] in result.stderr
    assert report["refused"] == [] and report["skipped"] == []


def test_a_run_again_after_a_stop_enrols_nobody_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    """The service lets two people share a name: a re-run enrolled everyone before the stop a second time, and the
    person whose enrolment was answered 504 though it was saved as well."""
    monkeypatch.setattr(lfw_import, "PAGE", 1)  # the names enrolled are read a page at a time: one a page here
    root = _lfw(tmp_path / "lfw", {"Ada_Lovelace": [photo], "Grace_Hopper": [photo], "Linus_Torvalds": [photo]})
    gallery = Gallery(_at_grace(504, "/identities"))
    assert _import(monkeypatch, gallery, root).exit_code == 1
    assert gallery.names == ["Ada Lovelace", "Grace Hopper"]  # the 504 came after Grace Hopper was saved

    gallery.failure = None
    result = _import(monkeypatch, gallery, root, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [person["name"] for person in report["enrolled"]] == ["Linus Torvalds"]
    assert report["already_enrolled"] == ["Ada_Lovelace", "Grace_Hopper"]
    assert gallery.names == ["Ada Lovelace", "Grace Hopper", "Linus Torvalds"]
    assert "enrolled 0 people" in (again := _import(monkeypatch, gallery, root).stdout)
    assert "3 enrolled already, not again" in again and len(gallery.names) == 3


def test_the_same_person_check_refuses_a_folder_unless_it_is_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photo: bytes
) -> None:
    """A labelled folder whose photos the embedder places apart is refused like any enrolment and reported; the
    import goes on. ``--no-same-person-check`` stores them as the folder says."""
    root = _lfw(tmp_path / "lfw", {"Ada_Lovelace": [photo, photo], "Look_Alike": [photo, photo]})
    gallery = Gallery()
    checked = _import(monkeypatch, gallery, root, "--per-person", "2", "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert [p["name"] for p in report["enrolled"]] == ["Ada Lovelace"]
    assert [(r["folder"], r["status"]) for r in report["refused"]] == [("Look_Alike", 422)]
    unchecked = _import(monkeypatch, gallery, root, "--per-person", "2", "--no-same-person-check", "--json")
    assert unchecked.exit_code == 0, unchecked.output
    assert [p["name"] for p in json.loads(unchecked.stdout)["enrolled"]] == ["Look Alike"]
    assert gallery.names == ["Ada Lovelace", "Look Alike"]
