"""Failures retried at every poll log each reason once (``app.log_once``): the helper, and the load follow-ups."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import app.services as services
from app.log_once import ReasonsLogged

log = logging.getLogger("deepcanvas.test-log-once")


def levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(record.levelno, record.getMessage()) for record in caplog.records if record.name == log.name]


def test_a_reason_is_logged_at_its_level_once_then_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    logged = ReasonsLogged(log)
    assert logged.log("classifier", "v9: missing", logging.ERROR, "failed: %s", "v9") is True
    assert logged.log("classifier", "v9: missing", logging.ERROR, "failed: %s", "v9") is False
    assert levels(caplog) == [(logging.ERROR, "failed: v9"), (logging.DEBUG, "failed: v9")]


def test_alternating_reasons_are_each_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A poll tries the stored version, the retry of the failed models the configured one: two reasons in turn."""
    caplog.set_level(logging.DEBUG, logger=log.name)
    logged = ReasonsLogged(log)
    for _ in range(5):
        logged.log("classifier", "v9", logging.ERROR, "v9 failed")
        logged.log("classifier", "v1", logging.ERROR, "v1 failed")
    logged.log("detector", "v9", logging.ERROR, "the detector's v9 failed")  # another key: its own reasons
    errors = [message for level, message in levels(caplog) if level == logging.ERROR]
    assert errors == ["v9 failed", "v1 failed", "the detector's v9 failed"]


def test_a_success_forgets_the_reasons_of_its_key_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    logged = ReasonsLogged(log)
    logged.log("classifier", "v9", logging.ERROR, "classifier failed")
    logged.log("detector", "v9", logging.ERROR, "detector failed")
    logged.forget("classifier")
    assert logged.log("classifier", "v9", logging.ERROR, "classifier failed") is True  # news again
    assert logged.log("detector", "v9", logging.ERROR, "detector failed") is False


def test_a_key_keeps_only_its_latest_reasons() -> None:
    logged = ReasonsLogged(log)
    for attempt in range(ReasonsLogged.KEPT + 1):
        logged.log("classifier", f"error at attempt {attempt}", logging.ERROR, "failed")
    assert logged.log("classifier", f"error at attempt {ReasonsLogged.KEPT}", logging.ERROR, "failed") is False
    assert logged.log("classifier", "error at attempt 0", logging.ERROR, "failed") is True  # the oldest: dropped


class Slot:
    predictor: Any = None


class Manager:
    def __init__(self) -> None:
        self.slots = {"style": Slot(), "gallery": Slot()}

    async def warm_deferred(self) -> list[str]:
        return []


def test_gallery_statistics_that_fail_at_every_poll_warn_once_per_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="deepcanvas")
    outcomes: list[Exception | None] = [RuntimeError("refused")] * 4 + [None, RuntimeError("refused")]

    async def remember(manager: Any, side: int) -> int:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        manager.slots = {"style": Slot(), "gallery": Slot()}  # new slots: the next run computes them again
        return 1

    monkeypatch.setattr(services, "remember_gallery_styles", remember)
    follow_ups = services.LoadFollowUps(Manager(), lambda: 512)  # type: ignore[arg-type]

    async def polls() -> None:
        for _ in range(6):
            await follow_ups.run()

    asyncio.run(polls())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # once for the first four polls; then a success, after which the same failure is news again
    assert warnings == ["gallery style statistics not precomputed: refused"] * 2, warnings
