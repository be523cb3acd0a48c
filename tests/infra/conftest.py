"""The CDK app, built and synthesized once per session into a temporary folder; skipped without jsii's node."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from infra.app import DeepCanvasApp


def require_cdk() -> None:
    """Skip unless aws-cdk-lib is installed and node (which runs jsii's kernel) is on PATH."""
    pytest.importorskip("aws_cdk", reason="aws-cdk-lib is not installed (the infra extra)")
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: aws-cdk-lib runs on jsii, which needs node to synthesize")


@pytest.fixture(scope="session")
def cdk_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk.out")


@pytest.fixture(scope="session")
def deepcanvas(cdk_outdir: Path) -> DeepCanvasApp:
    """All six stacks with the default context, synthesized to ``cdk_outdir``."""
    require_cdk()
    from infra.app import build_app

    built = build_app(cdk_outdir)
    built.app.synth()
    return built
