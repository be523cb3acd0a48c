"""The client CLI checks where it will write before it calls the service, and a failed write is an error."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app.cli import cli
from deepcanvas.cli import write_or_fail
from tests.support.images import face_like_photo

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
