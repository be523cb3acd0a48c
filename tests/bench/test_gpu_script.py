"""``python -m bench.gpu`` has one chance on a lent GPU: its whole path runs here on the CPU first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_benchmark_runs_end_to_end_and_writes_its_table(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--device", "cpu", "--batch", "1", "--clients", "2", "--seconds", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.gpu", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert report["device"].startswith("cpu") and [r["endpoint"] for r in report["rows"]] == ["/detect", "/stylize"]
    for row in report["rows"]:
        assert row["raw_images_per_s"] > 0 and row["service_requests_per_s"] > 0
        assert row["service_share"] == pytest.approx(row["service_requests_per_s"] / row["raw_images_per_s"], rel=0.02)
    assert "| /detect |" in (tmp_path / "gpu-bench.md").read_text()


def test_without_cuda_the_default_device_refuses_clearly() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([sys.executable, "-m", "bench.gpu"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no CUDA device" in result.stderr
