"""The installed client carries its type information (PEP 561)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_client_package_is_marked_typed_and_ships_the_marker() -> None:
    assert (REPO / "deepcanvas" / "py.typed").is_file()
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["deepcanvas"]
