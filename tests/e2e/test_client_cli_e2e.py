"""``deepcanvas detect | classify | stylize | styles`` against the real service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from deepcanvas.cli import client_cli
from deepcanvas.schemas import ClassifyResponse, DetectResponse, StylesResponse
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(sample_photo_bytes: bytes, tmp_path: Path) -> Path:
    path = tmp_path / "portrait.jpg"
    path.write_bytes(sample_photo_bytes)
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(client_cli, list(args))
    return result.exit_code, result.output


def test_detect_json_is_the_services_document(live_server: LiveServer, photo: Path) -> None:
    code, output = _run("detect", str(photo), "--url", live_server.url, "--conf", "0.05", "--json")
    assert code == 0, output
    answer = DetectResponse.model_validate_json(output)
    assert answer.detections and answer.image.width == Image.open(photo).width
    # a floor as large as the photo leaves no box
    code, output = _run(
        "detect", str(photo), "--url", live_server.url, "--conf", "0.05", "--json", "--min-size", "9999"
    )
    assert code == 0 and DetectResponse.model_validate_json(output).detections == []


def test_detect_prints_a_table_and_draws_the_boxes(live_server: LiveServer, photo: Path, tmp_path: Path) -> None:
    drawn = tmp_path / "boxes.jpg"
    code, output = _run("detect", str(photo), "--url", live_server.url, "--conf", "0.05", "--draw", str(drawn))
    assert code == 0, output
    assert "portrait.jpg" in output and "face-detector" in output and "score" in output
    original, boxed = Image.open(photo).convert("RGB"), Image.open(drawn).convert("RGB")
    assert boxed.size == original.size
    assert list(original.getdata()) != list(boxed.getdata())  # something was drawn


def test_classify_prints_each_face_with_its_probabilities(live_server: LiveServer, photo: Path) -> None:
    code, output = _run("classify", str(photo), "--url", live_server.url, "--no-detect-faces", "--json")
    assert code == 0, output
    answer = ClassifyResponse.model_validate_json(output)
    code, table = _run("classify", str(photo), "--url", live_server.url, "--no-detect-faces")
    assert code == 0 and "whole image" in table
    assert all(label in table for label in answer.faces[0].probabilities)


def test_stylize_writes_the_painting(live_server: LiveServer, photo: Path, tmp_path: Path) -> None:
    code, output = _run("styles", "--url", live_server.url, "--json")
    name = StylesResponse.model_validate_json(output).styles[0].name
    out = tmp_path / "painted.png"
    code, output = _run("stylize", str(photo), "--style-name", name, "-o", str(out), "--url", live_server.url)
    assert code == 0, output
    assert Image.open(out).format == "PNG" and f"wrote {out}" in output.replace("\n", "")


def test_an_error_exits_1_with_the_services_detail(live_server: LiveServer, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    result = CliRunner().invoke(client_cli, ["detect", str(text), "--url", live_server.url])
    assert result.exit_code == 1
    assert "415" in result.output and "not a JPEG" in result.output


def test_an_unreachable_service_exits_1_without_a_traceback(photo: Path) -> None:
    code, output = _run("detect", str(photo), "--url", "http://127.0.0.1:9", "--retries", "0")
    output = " ".join(output.split())  # rich wraps long lines
    assert code == 1 and "ConnectError" in output and "Traceback" not in output


def test_the_installed_command_runs_the_client_without_torch(live_server: LiveServer, photo: Path) -> None:
    """Through the console script's own entry point, which registers no training commands for these."""
    script = (
        "import sys; from app.cli import main\n"
        f"sys.argv = ['deepcanvas', 'detect', {str(photo)!r}, '--url', {live_server.url!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'ultralytics'))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["model"]["name"] == "face-detector"


def test_the_client_imports_nothing_of_the_service() -> None:
    script = (
        "import sys, deepcanvas, deepcanvas.cli, deepcanvas.drawing\n"
        "service = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('app', 'models', 'bench', 'torch', 'fastapi', 'uvicorn', 'onnxruntime', 'openvino'))\n"
        "assert not service, service\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
