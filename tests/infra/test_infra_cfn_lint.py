"""Every synthesized template passes cfn-lint without errors (warnings are reported, not failed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.cdk_support import require_cdk

require_cdk()

from infra.app import DeepCanvasApp  # noqa: E402

# cfn-lint's exit code is a bitmask: 2 errors, 4 warnings, 8 informational; 1 is a fatal (lint did not run).
CFN_LINT_FATAL, CFN_LINT_ERRORS = 1, 2


def test_every_stack_template_passes_cfn_lint(deepcanvas: DeepCanvasApp, cdk_outdir: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    if not cfn_lint.exists():
        pytest.skip(f"cfn-lint is not installed beside {sys.executable}")
    templates = sorted(cdk_outdir.glob("*.template.json"))
    assert [t.name for t in templates] == sorted(f"{s.stack_name}.template.json" for s in deepcanvas.stacks)
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--", *map(str, templates)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert not result.returncode & (CFN_LINT_FATAL | CFN_LINT_ERRORS), result.stdout + result.stderr
    if result.stdout.strip():
        print(f"cfn-lint warnings:\n{result.stdout}")
