"""What ``pip install .`` installs: the client, typed (PEP 561), with its dependencies and nothing more."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_client_package_is_marked_typed_and_ships_the_marker() -> None:
    assert (REPO / "deepcanvas" / "py.typed").is_file()
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["deepcanvas"]


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _imported(tree: ast.Module, nested: bool) -> set[str]:
    """Top-level module names ``tree`` imports: everywhere, or only at module level (not under TYPE_CHECKING)."""
    nodes = ast.walk(tree) if nested else (n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _client_distributions() -> set[str]:
    """The distributions the client's code imports: anything in deepcanvas/, and app/cli.py at module level (its
    client-only mode; the service's commands import theirs inside the functions, after checking they are here)."""
    modules = set().union(*(_imported(ast.parse(p.read_text()), True) for p in (REPO / "deepcanvas").glob("*.py")))
    modules |= _imported(ast.parse((REPO / "app" / "cli.py").read_text()), False)
    third_party = modules - set(sys.stdlib_module_names) - {"__future__", "deepcanvas", "app"}
    owners = importlib.metadata.packages_distributions()
    missing = sorted(m for m in third_party if m not in owners)
    assert not missing, f"imported, but installed by no distribution: {missing}"
    return {_name(dist) for module in third_party for dist in owners[module]}


def test_pip_install_dot_installs_what_the_client_imports_and_nothing_else() -> None:
    """The README tells a client user `pip install .`: its dependencies are the client's, no server package, no
    store client (boto3) or array library the client never imports."""
    base = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert base == _client_distributions()


def test_the_service_gets_what_left_the_base_dependencies_from_its_extra() -> None:
    serve = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["serve"]}
    assert {"numpy", "safetensors", "pydantic-settings", "tenacity", "boto3", "fastapi"} <= serve
