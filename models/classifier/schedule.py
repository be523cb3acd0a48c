"""A learning-rate schedule for time-budgeted runs: warm-up then cosine decay over whichever ends first,
the planned steps or the wall-clock budget. Its progress survives a resume (``state_dict``)."""

from __future__ import annotations

import math
import time
from typing import Any


class BudgetSchedule:
    """Sets every group's lr from progress = max(steps / total_steps, elapsed / budget_s); ``done`` at 1."""

    def __init__(
        self, optimizer: Any, max_lr: float, total_steps: int, budget_s: float | None, warmup: float = 0.05
    ) -> None:
        assert total_steps >= 1 and (budget_s is None or budget_s > 0), f"bad plan: {total_steps}, {budget_s}"
        self.optimizer, self.max_lr, self.total_steps = optimizer, max_lr, total_steps
        self.budget_s, self.warmup = budget_s, warmup
        self.steps, self.elapsed_before = 0, 0.0
        self.started = time.monotonic()
        self._apply()

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    @property
    def progress(self) -> float:
        by_time = self.elapsed_s / self.budget_s if self.budget_s else 0.0
        return min(1.0, max(self.steps / self.total_steps, by_time))

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    def lr(self) -> float:
        p = self.progress
        if p < self.warmup:
            return self.max_lr * (0.1 + 0.9 * p / self.warmup)
        return self.max_lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (p - self.warmup) / (1 - self.warmup))))

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "elapsed_s": self.elapsed_s}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.elapsed_before = int(state["steps"]), float(state["elapsed_s"])
        self.started = time.monotonic()
        self._apply()
