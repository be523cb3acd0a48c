"""The deepcanvas command: store management between local folders (S3 is covered by the store tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from app.cli import _register_model_commands, cli
from tests.support.fakes import make_fake_store

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
# What a client-only `pip install .` lacks: the serve, torch, onnx and openvino extras' packages.
SERVER_PACKAGES = (
    "numpy",
    "safetensors",
    "pydantic_settings",
    "tenacity",
    "boto3",
    "botocore",
    "fastapi",
    "starlette",
    "uvicorn",
    "multipart",
    "python_multipart",
    "prometheus_client",
    "aws_embedded_metrics",
    "psutil",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi_swagger",
    "torch",
    "torchvision",
    "ultralytics",
    "onnxruntime",
    "openvino",
    "cv2",
)
# Runs the console script's entry point as pyproject.toml names it, each server package None in sys.modules
# (importing it then fails as if it were not installed, and importlib.util.find_spec finds nothing).
CLIENT_ONLY_SCRIPT = (
    "import sys, tomllib\n"
    f"sys.modules.update(dict.fromkeys({SERVER_PACKAGES!r}))\n"
    "entry = tomllib.load(open('pyproject.toml', 'rb'))['project']['scripts']['deepcanvas']\n"
    "module, _, function = entry.partition(':')\n"
    "sys.argv = ['deepcanvas', *sys.argv[1:]]\n"
    "getattr(__import__(module, fromlist=[function]), function)()\n"
)


def _client_only(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", CLIENT_ONLY_SCRIPT, *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_models_list_push_pull_and_alias_round_trip(tmp_path: Path) -> None:
    source = make_fake_store(tmp_path / "source")
    target = (tmp_path / "target").as_uri()
    pushed = runner.invoke(
        cli, ["models", "push", str(source / "face-gender" / "v1"), "--store", target, "--alias", "stable"]
    )
    assert pushed.exit_code == 0, pushed.output
    listed = runner.invoke(cli, ["models", "list", "--store", target])
    assert "face-gender" in listed.output and "stable" in listed.output
    pulled = runner.invoke(cli, ["models", "pull", "face-gender", "stable", str(tmp_path / "out"), "--store", target])
    assert pulled.exit_code == 0, pulled.output
    assert (tmp_path / "out" / "face-gender" / "v1" / "manifest.json").is_file()
    bad = runner.invoke(cli, ["models", "alias", "face-gender", "stable", "v9", "--store", target])
    assert bad.exit_code != 0


def test_training_and_evaluation_commands_are_registered() -> None:
    _register_model_commands()
    for group, name in [
        ("train", "classifier"),
        ("eval", "classifier"),
        ("train", "detector"),
        ("eval", "detector"),
        ("data", "detector"),
        ("models", "import-yolo"),
    ]:
        result = runner.invoke(cli, [group, name, "--help"])
        assert result.exit_code == 0, (group, name, result.output)


def test_push_store_publishes_every_version_with_the_local_aliases(tmp_path: Path) -> None:
    source = make_fake_store(tmp_path / "source")
    target = (tmp_path / "target").as_uri()
    result = runner.invoke(cli, ["models", "push-store", str(source), "--store", target])
    assert result.exit_code == 0, result.output
    local = {p.parent.relative_to(source).as_posix() for p in source.glob("*/*/manifest.json")}
    published = {
        p.parent.relative_to(tmp_path / "target").as_posix() for p in (tmp_path / "target").glob("*/*/manifest.json")
    }
    assert published == local and len(local) >= 4
    for aliases in source.glob("*/aliases.json"):
        pushed_aliases = tmp_path / "target" / aliases.relative_to(source)
        assert json.loads(pushed_aliases.read_text()) == json.loads(aliases.read_text())
    missing = runner.invoke(cli, ["models", "push-store", str(tmp_path / "nowhere"), "--store", target])
    assert missing.exit_code == 2 and "Invalid value" in missing.output  # a usage error, before any upload


def test_serve_with_invalid_settings_says_what_is_wrong_and_never_prints_a_value(tmp_path: Path) -> None:
    env = {
        "DEEPCANVAS_DATABASE_URL": "mysql://user:topsecret-password@db.example/identities",
        "DEEPCANVAS_API_KEYS": "short-secret",
        "DEEPCANVAS_QUEUE_SIZE": "0",
    }
    result = runner.invoke(cli, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 2
    for variable in ("DEEPCANVAS_DATABASE_URL", "DEEPCANVAS_API_KEYS", "DEEPCANVAS_QUEUE_SIZE"):
        assert variable in result.output
    assert "topsecret" not in result.output and "short-secret" not in result.output


def test_the_deepcanvas_script_runs_the_client_commands_where_only_the_client_is_installed(tmp_path: Path) -> None:
    listed = _client_only("--help")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(command in listed.stdout for command in ("detect", "classify", "stylize", "identities", "verify"))
    detect_help = _client_only("detect", "--help")
    assert detect_help.returncode == 0 and "--draw" in detect_help.stdout, detect_help.stderr[-2000:]
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (200, 150, 120)).save(photo)
    called = _client_only("detect", str(photo), "--url", "http://127.0.0.1:9", "--retries", "0")
    assert called.returncode == 1, called.stderr[-2000:]  # it ran, and nothing listens there
    assert "ConnectError" in called.stderr and "Traceback" not in called.stderr


def test_a_server_command_without_the_service_packages_says_what_is_missing() -> None:
    served = _client_only("serve")
    assert served.returncode == 2 and "only the client is installed" in served.stderr, served.stderr[-2000:]
    assert "Traceback" not in served.stderr


def test_push_store_takes_a_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `deepcanvas models push-store ./my-store` ended in a ValueError: a relative path has no URI."""
    make_fake_store(tmp_path / "my-store")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["models", "push-store", "./my-store", "--store", (tmp_path / "target").as_uri()])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "target" / "face-detector" / "v1" / "manifest.json").is_file()
