"""The client tests' shared fixtures (tests/client/conftest.py) work, and no test module defines its own copy."""

from __future__ import annotations

import ast
from pathlib import Path

from deepcanvas import Client
from tests.support.tls import STYLES

HERE = Path(__file__).parent


def _fixtures(path: Path) -> set[str]:
    """The names of the functions ``path`` decorates with ``pytest.fixture`` (called or not)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    names.add(node.name)
    return names


def test_the_shared_tls_server_answers_a_client_that_trusts_its_certificate(
    tls_server: str, certificate: tuple[Path, Path]
) -> None:
    """What the library's and the CLI's TLS tests both ask of it: /healthz and /styles."""
    with Client(tls_server, timeout=30, retries=0, verify=certificate[0]) as client:
        assert client.health().status == "ok"
        assert client.styles().model_dump(exclude_none=True) == STYLES


def test_no_test_module_copies_a_shared_fixture() -> None:
    shared = _fixtures(HERE / "conftest.py")
    assert {"certificate", "tls_server"} <= shared
    for module in sorted(HERE.glob("test_*.py")):
        assert not _fixtures(module) & shared, f"{module.name} defines its own copy of a fixture of conftest.py"
