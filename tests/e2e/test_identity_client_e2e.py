"""The identity calls of ``Client``/``AsyncClient`` and the ``deepcanvas identities | identify | verify`` commands
against the real service (embedded store, SQLite database), on real LFW faces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from app.cli import cli
from deepcanvas import AsyncClient, Client
from deepcanvas.errors import InvalidParameter, NotFound, Unauthorized
from deepcanvas.lfw_import import Imported
from deepcanvas.schemas import IdentifyResponse, IdentityPage
from tests.support.servers import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.shared]
TOKEN = "client-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "DEEPCANVAS_ADMIN_TOKEN": TOKEN,
        "DEEPCANVAS_EMBEDDER_BACKEND": "openvino",
    }
    with LiveServer.ready(embedded_store.as_uri(), env) as server:
        yield server


@pytest.fixture(scope="module")
def lfw(shared_dir: Path) -> Path:
    return shared_dir / "data" / "lfw-funneled" / "images"


def photos(lfw: Path, person: str) -> list[Path]:
    return sorted((lfw / person).glob("*.jpg"))


def test_the_client_enrols_identifies_verifies_and_deletes(server: LiveServer, lfw: Path) -> None:
    serena, arnold = photos(lfw, "Serena_Williams"), photos(lfw, "Arnold_Schwarzenegger")
    with Client(server.url, admin_token=TOKEN) as dc:
        made = dc.enrol("Serena Williams", serena[:2])
        assert (made.name, made.faces) == ("Serena Williams", 2)
        assert dc.add_faces(made.id, serena[2].read_bytes()).faces == 3
        page = dc.identities(limit=10)
        assert isinstance(page, IdentityPage) and made.id in [i.id for i in page.identities]
        assert dc.identity(made.id).faces == 3
        [face] = dc.identify(serena[3]).faces  # 0032: one face (0041 shows a second)
        assert face.identity is not None and face.identity.id == made.id
        assert dc.identify(arnold[0]).faces[0].identity is None
        assert dc.verify(serena[4], serena[6]).same and not dc.verify(serena[4], arnold[1]).same
        with pytest.raises(InvalidParameter, match="no face"):
            dc.enrol("Nobody", Image.new("RGB", (200, 200), (90, 90, 90)))
        dc.delete_identity(made.id)
        with pytest.raises(NotFound):
            dc.identity(made.id)
        assert dc.identify(serena[5]).faces[0].identity is None
    with Client(server.url) as anonymous, pytest.raises(ValueError, match="admin_token"):
        anonymous.identities()
    with Client(server.url, admin_token="wrong") as wrong, pytest.raises(Exception) as raised:
        wrong.identities()
    assert getattr(raised.value, "status", None) == 403 and not isinstance(raised.value, Unauthorized)


def test_photos_of_two_people_are_refused_unless_the_check_is_turned_off(server: LiveServer, lfw: Path) -> None:
    serena, arnold = photos(lfw, "Serena_Williams"), photos(lfw, "Arnold_Schwarzenegger")
    with Client(server.url, admin_token=TOKEN) as dc:
        before = dc.identities(limit=1000).total
        with pytest.raises(InvalidParameter) as refused:
            dc.enrol("Mixed Up", [serena[0], arnold[0]])
        assert refused.value.code == "different_people" and dc.identities(limit=1000).total == before
        made = dc.enrol("Serena Williams", serena[:2])
        with pytest.raises(InvalidParameter, match="not the same person"):
            dc.add_faces(made.id, arnold[1])
        assert dc.identity(made.id).faces == 2
        assert dc.add_faces(made.id, arnold[1], same_person_check=False).faces == 3
        mixed = dc.enrol("Mixed Up", [serena[0], arnold[0]], same_person_check=False)
        assert mixed.faces == 2
        for identity_id in (made.id, mixed.id):
            dc.delete_identity(identity_id)
    runner = CliRunner()
    args = [
        "identities",
        "enrol",
        "--url",
        server.url,
        "--admin-token",
        TOKEN,
        "Mixed Up",
        str(serena[0]),
        str(arnold[0]),
    ]
    refused_cli = runner.invoke(cli, args)
    assert refused_cli.exit_code == 1 and "not the same person" in refused_cli.output
    accepted = runner.invoke(cli, [*args, "--no-same-person-check", "--json"])
    assert accepted.exit_code == 0, accepted.output
    with Client(server.url, admin_token=TOKEN) as dc:
        dc.delete_identity(json.loads(accepted.output)["id"])


def test_the_async_client_has_the_same_calls(server: LiveServer, lfw: Path) -> None:
    jennifer = photos(lfw, "Jennifer_Aniston")

    async def run() -> tuple[str, str | None]:
        async with AsyncClient(server.url, admin_token=TOKEN) as dc:
            made = await dc.enrol("Jennifer Aniston", jennifer[:1])
            answer = await dc.identify(jennifer[3], top_k=1)
            await dc.delete_identity(made.id)
            found = answer.faces[0].identity
            return made.id, found.id if found else None

    made, found = asyncio.run(run())
    assert found == made


def test_the_cli_imports_lfw_people_then_names_and_draws_them(server: LiveServer, lfw: Path, tmp_path: Path) -> None:
    root = tmp_path / "lfw"
    for person in ("Gerhard_Schroeder", "Jennifer_Aniston", "Serena_Williams"):
        (root / person).mkdir(parents=True)
        for photo in photos(lfw, person)[:3]:
            (root / person / photo.name).symlink_to(photo)
    base = ["--url", server.url]
    admin = [*base, "--admin-token", TOKEN]

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    assert "enrolled 3 people" in run("identities", "import-lfw", str(root), *admin, "--per-person", "2")
    listed = IdentityPage.model_validate_json(run("identities", "list", *admin, "--json"))
    names = {i.name for i in listed.identities}
    assert {"Gerhard Schroeder", "Jennifer Aniston", "Serena Williams"} <= names
    drawn = tmp_path / "named.jpg"
    query = photos(lfw, "Gerhard_Schroeder")[5]
    assert "Gerhard Schroeder" in run("identify", str(query), *base, "--draw", str(drawn))
    assert Image.open(drawn).size == Image.open(query).size
    gerhard = photos(lfw, "Gerhard_Schroeder")
    assert "same person" in run("verify", str(gerhard[6]), str(gerhard[7]), *base)
    refused = CliRunner().invoke(cli, ["identities", "list", *base])
    assert refused.exit_code == 2 and "--admin-token" in refused.output  # a usage error: nothing was sent


def test_the_cli_import_reports_what_the_service_refuses_goes_on_and_enrols_nobody_twice(
    server: LiveServer, lfw: Path, tmp_path: Path
) -> None:
    """An enrolment the service refused (a name with a zero-width space) ended the import with exit 1 and nobody
    after it enrolled; a photo /detect refused was skipped without a word; and a re-run enrolled everyone again."""
    root, hidden = tmp_path / "lfw", "Ariel\u200b_Sharon"
    for person, folder in (
        ("Colin_Powell", "Colin_Powell"),
        ("Ariel_Sharon", hidden),
        ("Jean_Chretien", "Jean_Chretien"),
    ):
        (root / folder).mkdir(parents=True)
        for photo in photos(lfw, person)[:2]:
            (root / folder / photo.name).symlink_to(photo)
    cut_short = photos(lfw, "Colin_Powell")[2].read_bytes()[:2000]  # a copy that failed half way
    (root / "Colin_Powell" / "Colin_Powell_0000.jpg").write_bytes(cut_short)  # the folder's first photo
    args = ["identities", "import-lfw", str(root), "--url", server.url, "--admin-token", TOKEN, "--json"]

    first = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
    again = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
    with Client(server.url, admin_token=TOKEN) as dc:
        enrolled = dc.identities(limit=1000).identities
        for made in enrolled:
            if made.name in ("Colin Powell", "Jean Chretien"):
                dc.delete_identity(made.id)  # the other tests' identify answers stay as they were
    assert first.exit_code == 0, first.output
    report = Imported.model_validate_json(first.stdout)
    assert [person.name for person in report.enrolled] == ["Colin Powell", "Jean Chretien"]
    assert [(r.folder, r.call, r.status) for r in report.refused] == [
        (hidden, "enrol", 422),
        ("Colin_Powell", "detect", 400),
    ]
    assert report.refused[1].photos == ["Colin_Powell_0000.jpg"]
    assert report.refused[0].detail == "name: contains U+200B (a zero-width character)" and report.skipped == []
    assert f"refused: enrolling {hidden}: error 422: name: contains U+200B" in first.stderr
    assert again.exit_code == 0, again.output
    resumed = Imported.model_validate_json(again.stdout)
    assert resumed.enrolled == [] and resumed.already_enrolled == ["Colin_Powell", "Jean_Chretien"]
    assert sorted(i.name for i in enrolled if i.name in ("Colin Powell", "Jean Chretien")) == [
        "Colin Powell",
        "Jean Chretien",
    ]


def _raw_enrolment(name: bytes, photo: Path) -> tuple[bytes, str]:
    """A multipart body with the raw bytes of ``name`` (as a client that does not encode UTF-8 sends it)."""
    boundary = "deepcanvas-e2e-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'.encode()
    part = f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{photo.name}"\r\n\r\n'
    body = head + name + part.encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_photo_without_a_face_is_an_empty_answer_and_names_must_be_utf8_without_hidden_characters(
    server: LiveServer, lfw: Path, shared_dir: Path, tmp_path: Path
) -> None:
    bridge = shared_dir / "data" / "style-transfer" / "content" / "golden_gate.jpg"
    printed = CliRunner().invoke(cli, ["identify", str(bridge), "--url", server.url, "--json"])
    assert printed.exit_code == 0, printed.output
    assert IdentifyResponse.model_validate_json(printed.stdout).faces == []
    strip = tmp_path / "strip.png"
    Image.new("RGB", (40000, 16), (120, 130, 140)).save(strip)
    serena = photos(lfw, "Serena_Williams")
    with Client(server.url, admin_token=TOKEN) as dc:
        assert dc.identify(strip).faces == []
        with pytest.raises(InvalidParameter, match=r"image_a.*no face found"):
            dc.verify(bridge, serena[4])
        with pytest.raises(InvalidParameter, match=r"name: contains U\+202E \(a bidirectional control\)"):
            dc.enrol("Serena\u202eWilliams", serena[:1])
        body, content_type = _raw_enrolment(b"Serena \xff", serena[0])
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
        refused = httpx.post(f"{server.url}/identities", content=body, headers=headers, timeout=60)
        assert (refused.status_code, refused.json()["detail"]) == (422, "name: not valid UTF-8")
