"""The CDK app, built and synthesized once per session into a temporary folder; skipped without jsii's node."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.infra.cdk_support import TEST_CONTEXT, require_cdk

if TYPE_CHECKING:
    from infra.app import DeepCanvasApp


@pytest.fixture(scope="session")
def cdk_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk.out")


@pytest.fixture(scope="session")
def deepcanvas(cdk_outdir: Path) -> DeepCanvasApp:
    """Every stack with the default context and a (placeholder) certificate, synthesized to ``cdk_outdir``."""
    require_cdk()
    from infra.app import build_app

    built = build_app(cdk_outdir, TEST_CONTEXT)
    built.app.synth()
    return built
