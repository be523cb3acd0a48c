"""The container builds install the torch pair the tests run on (the Makefile's), not whatever is newest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def _makefile_pair() -> str:
    found = re.search(r"^TORCH_SPEC \?= (.+)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    assert found is not None
    return found.group(1).strip()


@pytest.mark.parametrize(
    "path, pattern",
    [
        ("Dockerfile", r'^ARG TORCH_SPEC="([^"]+)"'),
        ("docker-compose.yml", r"TORCH_SPEC: \$\{TORCH_SPEC:-([^}]+)\}"),
        ("docker/smoke.sh", r'TORCH_SPEC="\$\{TORCH_SPEC:-([^}]+)\}"'),
    ],
)
def test_every_container_build_defaults_to_the_torch_pair_the_tests_run_on(path: str, pattern: str) -> None:
    """A laptop's `docker compose up --build` took the newest torch of its day ("torch torchvision"), an image
    nothing had tested; the pipeline already builds with the Makefile's pair."""
    defaults = re.findall(pattern, (REPOSITORY / path).read_text(), re.MULTILINE)
    assert defaults and all(default.strip() == _makefile_pair() for default in defaults), defaults
