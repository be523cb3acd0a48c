"""What the identity routes make of awkward input: photos without a face, and names that are blank, not UTF-8
or hide how they display. In-process: real app and SQLite database, fake detector and embedder."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import deepcanvas.cli as cli_module
from app.cli import cli
from app.main import create_app
from deepcanvas.client import Client
from tests.app.test_identities import ADA, ADMIN, NOBODY, _settings, enrol, photos
from tests.support.app_client import wait_ready
from tests.support.identity_fakes import identity_plans, people_photo

BOUNDARY = "deepcanvas-test-boundary"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), identity_plans())) as client:
        yield wait_ready(client)


def test_identify_answers_a_photo_without_a_face_with_no_faces_like_detect(client: TestClient) -> None:
    enrol(client, "Ada", ADA)  # (the index is loaded by then: before its first poll, /identify answers 503)
    files = {"image": ("wall.png", people_photo(NOBODY))}
    detected = client.post("/detect", files=files)
    identified = client.post("/identify", files=files)
    assert (detected.status_code, detected.json()["detections"]) == (200, [])
    assert identified.status_code == 200, identified.text
    answer = identified.json()
    assert answer["faces"] == [] and answer["gallery_size"] == 1 and answer["threshold"] == pytest.approx(0.8)


@pytest.mark.parametrize("empty", ["image_a", "image_b"])
def test_verify_names_the_photo_without_a_face_by_field_and_file(client: TestClient, empty: str) -> None:
    files = {
        field: (f"{field}.png", people_photo(NOBODY if field == empty else ADA)) for field in ("image_a", "image_b")
    }
    response = client.post("/verify", files=files)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{empty} '{empty}.png': no face found")


def test_the_identify_command_prints_an_empty_result_for_a_photo_without_a_face(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def in_process(request: httpx.Request) -> httpx.Response:
        answer = client.send(request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    monkeypatch.setattr(cli_module, "Client", functools.partial(Client, transport=httpx.MockTransport(in_process)))
    enrol(client, "Ada", ADA)
    wall = tmp_path / "wall.png"
    wall.write_bytes(people_photo(NOBODY))
    as_json = CliRunner().invoke(cli, ["identify", str(wall), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["faces"] == []
    as_table = CliRunner().invoke(cli, ["identify", str(wall)])
    assert as_table.exit_code == 0 and "wall.png: 0 faces" in as_table.stdout


def _multipart(name: bytes, photo: bytes) -> bytes:
    """A form with the raw bytes of ``name``, as a client that does not encode UTF-8 sends it."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\n'.encode()
    image = (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + name + image + photo + f"\r\n--{BOUNDARY}--\r\n".encode()


def _enrol_raw(client: TestClient, name: bytes) -> httpx.Response:
    headers = {**ADMIN, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return client.post("/identities", content=_multipart(name, people_photo(ADA)), headers=headers)


def test_a_name_that_is_not_utf8_is_refused_rather_than_read_as_latin1(client: TestClient) -> None:
    refused = _enrol_raw(client, b"a\xffb")
    assert (refused.status_code, refused.json()["detail"]) == (422, "name: not valid UTF-8")
    assert client.get("/identities", headers=ADMIN).json()["total"] == 0
    typed = _enrol_raw(client, "aÿb Zoë".encode())  # the same letters, sent as UTF-8
    assert typed.status_code == 201 and typed.json()["name"] == "aÿb Zoë"


@pytest.mark.parametrize(
    ("character", "kind"),
    [
        ("\u202e", "a bidirectional control"),  # right-to-left override: "txt.exe" shown as "exe.txt"
        ("\u202a", "a bidirectional control"),
        ("\u2066", "a bidirectional control"),
        ("\u2069", "a bidirectional control"),
        ("\u200f", "a bidirectional control"),
        ("\u200b", "a zero-width character"),
        ("\u2060", "a zero-width character"),
        ("\ufeff", "a zero-width character"),
    ],
)
def test_a_name_that_hides_how_it_displays_is_refused_naming_the_character(
    client: TestClient, character: str, kind: str
) -> None:
    response = client.post("/identities", data={"name": f"Ada{character}Lovelace"}, files=photos(ADA), headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"] == f"name: contains U+{ord(character):04X} ({kind})"


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Ångström-Núñez",
        "עדה לאבלייס",  # Hebrew
        "عادل إمام",  # Arabic
        "Ada 👩\u200d👩\u200d👧",  # an emoji ZWJ sequence
        "Ada 👍🏽 ❤\ufe0f",  # a skin tone and a variation selector
        "مهر\u200cناز",  # Persian, spelled with a ZWNJ
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Ada",  # Scotland's flag: tags
        "\u1830\u1820\u1837\u180e\u1820",  # Mongolian "Saraa", with its vowel separator
        "\u0d05\u0d30\u0d4d\u200d\u0d1c\u0d41\u0d28\u0d4d\u200d",  # Malayalam "Arjun": chillu letters, ZWJ last
        "\u09b6\u09b0\u09a4\u09cd\u200d",  # Bengali "Sharat": khanda ta
        "1\ufe0f\u20e3 Ada \U0001f3f3\ufe0f\u200d\U0001f308",  # a keycap and the rainbow flag
        "\u845b\U000e0100",  # an ideographic variation selector
    ],
)
def test_names_in_any_script_with_emoji_and_joiners_are_enrolled_as_sent(client: TestClient, name: str) -> None:
    response = client.post("/identities", data={"name": name}, files=photos(ADA), headers=ADMIN)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("\u200d", "contains U+200D (an invisible formatting character)"),  # a joiner with nothing to join
        ("Ada\u200c", "contains U+200C (an invisible formatting character)"),
        ("Ada\u00adLovelace", "contains U+00AD (an invisible formatting character)"),  # soft hyphen
        ("\u2063", "contains U+2063 (an invisible formatting character)"),
        ("Ada\U000e0041\U000e0042", "contains U+E0041 (an invisible formatting character)"),  # tags, no flag
        ("\ufff9Ada", "contains U+FFF9 (an invisible formatting character)"),
        ("\ue000", "contains U+E000 (a private-use or non-character code point)"),
        ("Ada\uffff", "contains U+FFFF (a private-use or non-character code point)"),
        ("Ada\u2028Lovelace", "must not contain control characters (tabs, line breaks, NUL)"),  # line separator
        ("Ada\u2029Lovelace", "must not contain control characters (tabs, line breaks, NUL)"),
        ("\u3164", "contains U+3164 (an invisible character)"),  # Hangul filler: a letter that draws nothing
        ("Ada\u3164", "contains U+3164 (an invisible character)"),
        ("A\uffa0da", "contains U+FFA0 (an invisible character)"),
        ("Ada\u2800\u2800", "contains U+2800 (an invisible character)"),  # braille blank
        ("\ufe0f", "contains U+FE0F (an invisible character)"),  # a variation selector with nothing to vary
        ("Ada\ufe0e\ufe0e", "contains U+FE0E (an invisible character)"),  # the second varies nothing
        ("Ada\u034f", "contains U+034F (an invisible character)"),  # combining grapheme joiner
        ("Ada\u180b", "contains U+180B (an invisible character)"),  # a Mongolian selector after a Latin letter
        ("Ada \u200d\u200c\u200d Lovelace", "contains U+200D (an invisible formatting character)"),
        ("Ann\u200da", "contains U+200D (an invisible formatting character)"),  # between Latin letters: joins nothing
        ("\u0410\u043d\u200c\u043d\u0430", "contains U+200C (an invisible formatting character)"),  # Cyrillic
        ("Ade\u0301\u200d", "contains U+200D (an invisible formatting character)"),  # after a Latin letter's accent
        ("\u674e\u200d\u5a1c", "contains U+200D (an invisible formatting character)"),  # between CJK ideographs
        ("Ada\u200d\U0001f44d", "contains U+200D (an invisible formatting character)"),  # a letter, then an emoji
        (  # tags after a whole flag: text hidden behind it
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f\U000e0041",
            "contains U+E0041 (an invisible formatting character)",
        ),
        (
            "\U0001f3f4\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065\U000e0020\U000e0061",
            "contains U+E0069 (an invisible formatting character)",
        ),
        ("\u0301\u0301", "must not be blank"),  # combining marks with nothing to mark
    ],
)
def test_a_name_that_shows_nothing_or_hides_a_character_is_refused(client: TestClient, name: str, said: str) -> None:
    response = client.post("/identities", data={"name": name}, files=photos(ADA), headers=ADMIN)
    assert (response.status_code, response.json()["detail"]) == (422, f"name: {said}")
    assert client.get("/identities", headers=ADMIN).json()["total"] == 0


def test_an_enrolment_cut_short_is_refused_and_stores_nothing(client: TestClient) -> None:
    """A body that ends before its closing boundary, with a Content-Length to match: the photo cut in the
    middle used to vanish and the others be enrolled."""
    headers = {**ADMIN, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    whole = _multipart(b"Ada", people_photo(ADA))
    for cut in (whole[: len(whole) - 300], whole[: -len(f"--{BOUNDARY}--\r\n")]):
        response = client.post("/identities", content=cut, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "detail": "the multipart body ends before its closing boundary: it was cut short",
            "code": "bad_request",
        }
    assert client.get("/identities", headers=ADMIN).json()["total"] == 0
    assert client.post("/identities", content=whole, headers=headers).status_code == 201


@pytest.mark.parametrize("name", ["", "   ", "\u3000"])
def test_a_blank_name_is_called_blank_not_missing(client: TestClient, name: str) -> None:
    response = client.post("/identities", data={"name": name}, files=photos(ADA), headers=ADMIN)
    assert (response.status_code, response.json()["detail"]) == (422, "name: must not be blank")
    missing = client.post("/identities", files=photos(ADA), headers=ADMIN)
    assert missing.json()["detail"] == "name: Field required"


def test_a_bad_name_without_the_admin_token_is_still_a_401(client: TestClient) -> None:
    assert client.post("/identities", data={"name": " "}, files=photos(ADA)).status_code == 401


def test_a_name_sent_twice_is_refused_without_a_word_about_photos(client: TestClient) -> None:
    data = [("name", (None, "Ada")), ("name", (None, "Bob"))]
    response = client.post("/identities", files=[*data, ("image", ("p.png", people_photo(ADA)))], headers=ADMIN)
    assert (response.status_code, response.json()["detail"]) == (422, "name: sent 2 times; it takes one value")


def test_a_paging_value_sent_twice_is_refused_not_the_last_one_taken(client: TestClient) -> None:
    """FastAPI kept the last of a repeated query parameter: ?limit=1&limit=500 listed up to 500."""
    enrol_ada = client.post("/identities", data={"name": "Ada"}, files=photos(ADA), headers=ADMIN)
    assert enrol_ada.status_code == 201
    response = client.get("/identities?limit=1&limit=500", headers=ADMIN)
    assert (response.status_code, response.json()["detail"]) == (
        422,
        "limit: sent 2 times in the query; it takes one value",
    )
    assert client.get("/identities?limit=1&offset=0", headers=ADMIN).json()["limit"] == 1
    assert client.get("/identities?unknown=1&unknown=2", headers=ADMIN).status_code == 200  # not ours to judge
