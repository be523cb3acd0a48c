"""Logging a failure that is retried over and over (at every poll) once per reason, not at every try."""

from __future__ import annotations

import logging
from collections.abc import Hashable


def reason_of(error: BaseException) -> str:
    """An error as a reason to log once: its type and message (two errors of one type with one message are one)."""
    return f"{type(error).__name__}: {error}"


class ReasonsLogged:
    """Per key (a role, a task), the reasons of its failures already logged.

    ``log`` writes a reason new for its key at the level asked, and one already logged for it at DEBUG: a failure
    retried at every poll (10 s by default) writes one line per reason, not one per poll for as long as it lasts;
    and two reasons that alternate (one version tried by a poll, another by the retry of the failed models) write
    one line each, not one per try. ``forget(key)`` on success: the next failure is news again.
    A key keeps its latest ``KEPT`` reasons, so an error whose text changes every time cannot grow it for good.
    """

    KEPT = 8

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._reasons: dict[Hashable, dict[str, None]] = {}  # key -> its reasons logged, the latest last

    def log(self, key: Hashable, reason: str, level: int, message: str, *args: object, exc_info: bool = False) -> bool:
        """``message % args`` at ``level`` when ``reason`` is new for ``key``, else at DEBUG; True when new.

        ``exc_info``: the exception being handled, with its traceback, on the line written at ``level`` only.
        """
        reasons = self._reasons.setdefault(key, {})
        new = reason not in reasons
        reasons.pop(reason, None)
        reasons[reason] = None
        while len(reasons) > self.KEPT:
            del reasons[next(iter(reasons))]
        self.logger.log(level if new else logging.DEBUG, message, *args, exc_info=exc_info and new, stacklevel=2)
        return new

    def forget(self, key: Hashable) -> bool:
        """``key`` succeeded: whatever fails next for it is logged at its level again. True when it had failed."""
        return self._reasons.pop(key, None) is not None
