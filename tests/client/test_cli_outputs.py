"""What the client CLI writes and prints: it checks where it will write before it calls the service, a failed
write is an error, and ``stylize`` and ``styles`` print what scripts and people need (against a fake service)."""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import deepcanvas.cli as cli_module
from app.cli import cli
from deepcanvas.cli import client_cli, write_or_fail
from deepcanvas.client import Client
from tests.support.fakes import make_fake_store
from tests.support.images import face_like_photo

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a command that got this far would say "Connection refused"


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(face_like_photo(64, 48))
    return path


@pytest.mark.parametrize(
    "command, option, target, said",
    [
        ("detect", "--draw", "missing/boxes.jpg", "does not exist"),
        ("detect", "--draw", "boxes.txt", "name an image file"),
        ("classify", "--draw", ".", "is a folder"),
        ("identify", "--draw", "missing/named.png", "does not exist"),
        ("stylize", "-o", "missing/painted.png", "does not exist"),
        ("stylize", "-o", "painted.webp", "name a .png file"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_call(
    photo: Path, tmp_path: Path, command: str, option: str, target: str, said: str
) -> None:
    args = [command, str(photo), option, str(tmp_path / target), "--url", UNREACHABLE, "--retries", "0"]
    args += ["--style-name", "mosaic-tiles"] if command == "stylize" else []
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})  # rich would cut the message at 80
    assert result.exit_code == 2, result.output
    assert said in result.output and "refused" not in result.output


def test_a_write_that_fails_ends_the_command_with_its_reason(tmp_path: Path) -> None:
    def full_disk() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(typer.Exit) as ended:
        write_or_fail(tmp_path / "painted.png", full_disk)
    assert ended.value.exit_code == 1


def _fake_service(answer: Callable[[httpx.Request], httpx.Response]) -> Callable[..., Client]:
    """``Client`` as the CLI builds it, but answered by ``answer`` instead of a network."""
    return functools.partial(Client, transport=httpx.MockTransport(answer))


def _painting(request: httpx.Request) -> httpx.Response:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(buffer, format="PNG")
    nst = b'name="method"\r\n\r\nnst' in request.content
    headers = {"content-type": "image/png", "x-model-name": "style-adain", "x-model-version": "v3"}
    return httpx.Response(200, content=buffer.getvalue(), headers=headers | ({"x-nst-steps": "12"} if nst else {}))


@pytest.mark.parametrize("method, steps", [("adain", None), ("nst", 12)])
def test_stylize_json_describes_the_file_it_wrote(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, steps: int | None
) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_painting))
    out = tmp_path / "painted.png"
    args = ["stylize", str(photo), "--style-name", "starry-night", "-o", str(out), "--method", method, "--json"]
    result = CliRunner().invoke(client_cli, args)
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)  # the whole of stdout is one JSON document: no human line beside it
    assert written == {
        "path": str(out),
        "width": 40,
        "height": 30,
        "media_type": "image/png",
        "bytes": out.stat().st_size,
        "model": {"name": "style-adain", "version": "v3"},
        "nst_steps": steps,
    }
    assert Image.open(out).size == (40, 30)


def test_stylize_without_json_says_what_it_wrote_in_words(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_painting))
    out = tmp_path / "painted.png"
    args = ["stylize", str(photo), "--style-name", "starry-night", "-o", str(out)]
    result = CliRunner().invoke(client_cli, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (40×30 px, style-adain v3)" in result.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


GALLERY = {
    "gallery": {"name": "style-gallery", "version": "v2"},
    "styles": [
        {
            "name": "starry-night",
            "title": "The Starry Night",
            "description": "Swirling night sky",
            "artist": "Vincent van Gogh",
            "year": "1889",
            "url": "/styles/starry-night/image",
        },
        {
            "name": "concentric-ripples",
            "title": "Concentric ripples",
            "description": "A generated texture",
            "url": "/styles/concentric-ripples/image",
        },
    ],
}


def _gallery(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/styles"
    return httpx.Response(200, json=GALLERY)


def test_styles_credits_each_painting_by_artist_and_year_and_textures_by_no_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_gallery))
    result = CliRunner().invoke(client_cli, ["styles"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    cells = [line.replace("┃", "│").split("│")[1:-1] for line in result.output.splitlines()]
    rows = {row[0].strip(): [cell.strip() for cell in row] for row in cells if row}
    assert rows["name"][2] == "by"  # the header
    assert rows["starry-night"][2] == "Vincent van Gogh, 1889"
    assert rows["concentric-ripples"][2] == ""


def test_styles_json_carries_the_artist_and_year(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_gallery))
    result = CliRunner().invoke(client_cli, ["styles", "--json"])
    assert result.exit_code == 0, result.output
    styles = {entry["name"]: entry for entry in json.loads(result.stdout)["styles"]}
    assert (styles["starry-night"]["artist"], styles["starry-night"]["year"]) == ("Vincent van Gogh", "1889")
    assert (styles["concentric-ripples"]["artist"], styles["concentric-ripples"]["year"]) == (None, None)


@pytest.mark.parametrize(
    ("nst", "line"),
    [
        (
            {"available": True, "reason": None, "max_side": 512, "max_seconds": 55.0},
            "--method nst: up to 55 s a painting, at most 512 px",
        ),
        (
            {"available": False, "reason": "method=nst needs torch", "max_side": 512, "max_seconds": 55.0},
            "--method nst: not here (method=nst needs torch)",
        ),
        (None, None),  # an older service does not say
    ],
)
def test_styles_says_whether_the_service_paints_with_nst(
    monkeypatch: pytest.MonkeyPatch, nst: dict[str, object] | None, line: str | None
) -> None:
    answer = GALLERY | ({"nst": nst} if nst else {})
    monkeypatch.setattr(cli_module, "Client", _fake_service(lambda request: httpx.Response(200, json=answer)))
    result = CliRunner().invoke(client_cli, ["styles"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    if line is None:
        assert "--method nst" not in result.output
    else:
        assert line in result.output
    printed = json.loads(CliRunner().invoke(client_cli, ["styles", "--json"]).stdout)
    assert printed.get("nst", "not sent") == (nst or "not sent")  # the service's answer, no null it did not send


LONG_DETAIL = (
    "style_name: 'starry-nite' is not in the gallery [style-gallery v3]; "
    "see GET /styles for the names it has, or send your own painting as a style file"
)


def _refusal(request: httpx.Request) -> httpx.Response:
    return httpx.Response(422, json={"detail": LONG_DETAIL})


def test_an_error_from_the_service_is_printed_on_one_line_as_it_came(
    photo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_refusal))
    result = CliRunner().invoke(client_cli, ["detect", str(photo)], env={"COLUMNS": None})  # as in a pipe: 80
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error 422: {LONG_DETAIL}"  # unwrapped, and its [...] kept as text
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "option"),
    [("identify", "--min-similarity"), ("identify", "--threshold"), ("verify", "--max-distance")],
)
def test_the_threshold_options_say_what_they_bound_and_send_the_apis_threshold(
    photo: Path, monkeypatch: pytest.MonkeyPatch, command: str, option: str
) -> None:
    """identify's --threshold is a similarity and verify's a distance: each also goes by the name of what it is."""
    sent: list[bytes] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return httpx.Response(422, json={"detail": "recorded"})

    monkeypatch.setattr(cli_module, "Client", _fake_service(refuse))
    photos = [str(photo)] * (2 if command == "verify" else 1)
    result = CliRunner().invoke(cli, [command, *photos, option, "0.5"])
    assert result.exit_code == 1 and "recorded" in result.stderr, result.output
    [body] = sent
    assert b'name="threshold"\r\n\r\n0.5\r\n' in body


def test_an_unreachable_service_is_one_line_on_stderr(photo: Path) -> None:
    url = UNREACHABLE + "/a/path/long/enough/that/the/message/cannot/fit/in/eighty/columns/of/a/terminal"
    args = ["identify", str(photo), "--url", url, "--retries", "0", "--json"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": None})
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "refused" in line and len(line) > 80


def _fresh_settings_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a first run on a machine: no ultralytics settings file anywhere yet."""
    env = {k: v for k, v in os.environ.items() if k != "YOLO_CONFIG_DIR" and not k.startswith("DEEPCANVAS_")}
    return env | {"TMPDIR": str(tmp_path), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.mark.parametrize(
    ("args", "starts"),
    [(["--help"], "Usage:"), (["models", "list", "--store", "STORE"], "┏")],  # ┏: the table
)
def test_the_deepcanvas_command_keeps_stdout_for_its_answer_on_a_first_run(
    tmp_path: Path, args: list[str], starts: str
) -> None:
    store = make_fake_store(tmp_path / "store")
    argv = [a.replace("STORE", store.as_uri()) for a in args]
    run = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *argv],
        capture_output=True,
        text=True,
        env=_fresh_settings_env(tmp_path),
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.lstrip().startswith(starts), run.stdout[:500]
    assert "Ultralytics" not in run.stdout


def test_stylize_with_style_and_style_name_exits_2_before_uploading(
    photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []
    monkeypatch.setattr(cli_module, "Client", _fake_service(lambda request: sent.append(request) or _painting(request)))
    args = ["stylize", str(photo), "--style", str(photo), "--style-name", "starry-night", "-o", str(tmp_path / "p.png")]
    result = CliRunner().invoke(client_cli, args, env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "not both" in result.output
    assert sent == [] and not (tmp_path / "p.png").exists()


IDENTITY = {
    "id": "3f2a9c0d6b1e4f7a8c5d2e1f0a9b8c7d",
    "name": "Augusta Ada King, Countess of Lovelace, née Byron",
    "faces": 3,
    "stale_faces": 0,
    "created_at": "2026-01-02T03:04:05Z",
    "updated_at": "2026-01-02T03:04:05Z",
}


def _identities(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/identities":
        return httpx.Response(200, json={"total": 1, "limit": 100, "offset": 0, "identities": [IDENTITY]})
    return httpx.Response(200, json=IDENTITY)


@pytest.mark.parametrize("args", [["identities", "list"], ["identities", "show", IDENTITY["id"]]])
def test_identity_tables_keep_the_id_whole_on_one_line_in_80_columns(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_identities))
    result = CliRunner().invoke(cli, [*args, "--admin-token", "t"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert IDENTITY["id"] in result.output  # copyable: not wrapped, not cut


def _classified(request: httpx.Request) -> httpx.Response:
    face = {"box": [1, 2, 30, 40], "label": "female", "score": 0.9, "probabilities": {"female": 0.9, "male": 0.1}}
    answer = {"model": {"name": "face-gender", "version": "v4"}, "detector": None, "faces": [face]}
    return httpx.Response(200, json=answer)


def test_classify_counts_one_face_in_the_singular(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "Client", _fake_service(_classified))
    result = CliRunner().invoke(client_cli, ["classify", str(photo)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "photo.jpg: 1 face\n" in result.output or "photo.jpg: 1 face " in result.output
    assert "1 faces" not in result.output


def _form_field(request: httpx.Request, name: str) -> str | None:
    """A multipart form field's value as sent, None when it was not."""
    marker = f'name="{name}"\r\n\r\n'.encode()
    start = request.content.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return request.content[start : request.content.index(b"\r\n", start)].decode()


DETECTED_WITH_LANDMARKS = {
    "model": {"name": "face-detector", "version": "v2"},
    "image": {"width": 64, "height": 48},
    "detections": [
        {
            "box": [1, 2, 30, 40],
            "score": 0.9,
            "label": "face",
            "landmarks": [[10, 12], [20, 12], [15, 20], [11, 30], [19, 30]],
        }
    ],
}
DETECTION_OPTIONS = ["--conf", "0.3", "--iou", "0.4", "--max-det", "7", "--imgsz", "320", "--min-size", "12"]
DETECTION_FIELDS = {"conf": "0.3", "iou": "0.4", "max_det": "7", "imgsz": "320", "min_size": "12.0", "tile": "on"}


def test_detect_sends_every_detection_option_and_shows_landmarks(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[httpx.Request] = []

    def detected(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=DETECTED_WITH_LANDMARKS)

    monkeypatch.setattr(cli_module, "Client", _fake_service(detected))
    args = ["detect", str(photo), *DETECTION_OPTIONS, "--tile", "on", "--landmarks"]
    result = CliRunner().invoke(client_cli, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    [request] = sent
    assert {name: _form_field(request, name) for name in DETECTION_FIELDS} == DETECTION_FIELDS
    assert _form_field(request, "landmarks") == "true"
    assert "10,12 20,12 15,20 11,30 19,30" in result.output  # the table shows the points asked for


def test_classify_sends_the_detection_options_min_size_included(photo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[httpx.Request] = []
    monkeypatch.setattr(
        cli_module, "Client", _fake_service(lambda request: sent.append(request) or _classified(request))
    )
    args = ["classify", str(photo), *DETECTION_OPTIONS, "--tile", "on", "--min-score", "0.6"]
    result = CliRunner().invoke(client_cli, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    [request] = sent
    assert {name: _form_field(request, name) for name in DETECTION_FIELDS} == DETECTION_FIELDS
    assert _form_field(request, "min_score") == "0.6"


def test_the_clients_classify_sends_min_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """/classify's detection step takes min_size as /detect does; the client had no way to send it."""
    sent: list[httpx.Request] = []
    with _fake_service(lambda request: sent.append(request) or _classified(request))("http://dc") as client:
        client.classify(b"photo", min_size=0)
    assert _form_field(sent[0], "min_size") == "0"


@pytest.mark.parametrize("command", ["detect", "classify"])
def test_tile_is_a_choice_refused_before_the_photo_is_sent(
    photo: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """--tile took any text and the service answered 422 (exit 1); it is auto, on or off, as the API's field."""
    sent: list[httpx.Request] = []
    monkeypatch.setattr(
        cli_module, "Client", _fake_service(lambda request: sent.append(request) or _classified(request))
    )
    result = CliRunner().invoke(client_cli, [command, str(photo), "--tile", "sideways"], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert "'auto', 'on', 'off'" in result.output and sent == []


def test_identities_delete_json_says_what_was_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service answers 204 with no body; --json prints a document all the same, so scripts parse every
    command's answer alike."""
    monkeypatch.setattr(cli_module, "Client", _fake_service(lambda request: httpx.Response(204)))
    args = ["identities", "delete", IDENTITY["id"], "--admin-token", "t", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": IDENTITY["id"], "deleted": True}


def test_identities_import_lfw_json_lists_who_was_enrolled_and_what_was_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for person, photos in (("Ada_Lovelace", 1), ("Nobody_Here", 0)):
        (tmp_path / "lfw" / person).mkdir(parents=True)
        for index in range(photos):
            (tmp_path / "lfw" / person / f"{person}_{index:04d}.jpg").write_bytes(face_like_photo(64, 48))

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/detect":
            return httpx.Response(200, json=DETECTED_WITH_LANDMARKS)
        if request.method == "GET":  # who is enrolled already: nobody
            return httpx.Response(200, json={"total": 0, "limit": 1000, "offset": 0, "identities": []})
        return httpx.Response(201, json=IDENTITY)

    monkeypatch.setattr(cli_module, "Client", _fake_service(service))
    args = ["identities", "import-lfw", str(tmp_path / "lfw"), "--admin-token", "t", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [person["id"] for person in report["enrolled"]] == [IDENTITY["id"]]
    assert report["skipped"] == ["Nobody_Here"] and report["root"] == str(tmp_path / "lfw")


def test_identities_import_lfw_stops_at_a_refused_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 4xx from /detect was read as "not a photo the service reads" and skipped: a wrong API key (403) ended in
    "enrolled 0 people", exit 0. Only what concerns the photo itself is skipped now."""
    (tmp_path / "lfw" / "Ada_Lovelace").mkdir(parents=True)
    (tmp_path / "lfw" / "Ada_Lovelace" / "Ada_Lovelace_0001.jpg").write_bytes(face_like_photo(64, 48))
    refused = httpx.Response(403, json={"detail": "invalid API key"})
    monkeypatch.setattr(cli_module, "Client", _fake_service(lambda request: refused))
    args = ["identities", "import-lfw", str(tmp_path / "lfw"), "--admin-token", "t", "--api-key", "wrong"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "error 403: invalid API key" in result.stderr and "enrolled" not in result.stdout
