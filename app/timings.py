"""Where one request's time went, for its ``Server-Timing`` response header.

The telemetry middleware opens a record per request; the steps that matter note their durations in it:
decoding the upload (``decode``), averaging a large photo decoded whole down for the detector (``reduce``),
encoding an image answer (``encode``) and the time a request waited for its model beyond the inference itself
(``queue``: the micro-batch queue and the hand-offs to the model's thread).
Inferences themselves are recorded by the model manager (``app.manager.inferences``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

phases: ContextVar[list[tuple[str, float]] | None] = ContextVar("phases", default=None)


def record_phase(name: str, seconds: float) -> None:
    """Note ``seconds`` spent in ``name`` for the current request (nothing outside a request)."""
    record = phases.get()
    if record is not None:
        record.append((name, seconds))


@contextmanager
def timed_phase(name: str) -> Iterator[None]:
    """Record the time the ``with`` block takes as ``name`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record_phase(name, time.perf_counter() - started)
