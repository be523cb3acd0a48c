"""``python -m bench.backends`` runs every backend on the same artifacts and reports each against torch."""

from __future__ import annotations

import pytest

from bench.backends import BACKENDS, CASES, Timing, measure, report


@pytest.mark.slow
def test_every_backend_is_timed_for_every_case() -> None:
    timings = measure(repeats=1, threads=1)
    assert [t.case for t in timings] == list(CASES)
    assert all(set(t.ms) == set(BACKENDS) and all(ms > 0 for ms in t.ms.values()) for t in timings)


def test_the_report_divides_torch_by_each_backend() -> None:
    ms = {"torch": 100.0, "onnxruntime": 50.0, "openvino-f32": 40.0, "openvino": 25.0}
    table = report([Timing("detect 640", ms)])
    assert "| detect 640 | 100.0 | 50.0 | 40.0 | 25.0 | 2.00x | 2.50x | 4.00x |" in table.splitlines()
