"""The command a manifest records is the one that was typed, however the trainer was started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from models.provenance import REPO_ROOT, invoked_command


def test_a_console_script_is_recorded_by_its_name_with_quoted_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/deepcanvas", "train", "classifier", "my data", "out"])
    assert invoked_command() == "deepcanvas train classifier 'my data' out"


def test_a_module_run_is_recorded_as_python_dash_m(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(REPO_ROOT / "models" / "classifier" / "train.py"), "data", "out"])
    assert invoked_command() == f"{Path(sys.executable).name} -m models.classifier.train data out"
