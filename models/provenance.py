"""Where a trained artifact came from: the command that made it and the commit its code was at."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def invoked_command() -> str:
    """The command line as typed (``deepcanvas train ...``), for the manifest's provenance.

    Run as ``python -m package.module``, argv[0] is the module's file: the command then reads
    ``python -m package.module ...``.
    """
    program = Path(sys.argv[0])
    if program.suffix == ".py" and program.resolve().is_relative_to(REPO_ROOT):
        module = ".".join(program.resolve().relative_to(REPO_ROOT).with_suffix("").parts)
        return shlex.join([Path(sys.executable).name, "-m", module, *sys.argv[1:]])
    return shlex.join([program.name, *sys.argv[1:]])


def portable_path(path: Path) -> str:
    """``path`` relative to the checkout (``../shared/data/...`` for shared data), never an absolute path."""
    return Path(os.path.relpath(Path(path).resolve(), REPO_ROOT)).as_posix()
