"""Graceful shutdown: on SIGTERM stop being ready, refuse new work, let in-flight requests finish."""

from __future__ import annotations

import threading
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ShuttingDown, refusal

# Probes and scrapes keep answering while draining, so the load balancer sees readiness drop.
ALWAYS_OPEN = ("/healthz", "/readyz", "/metrics")


class ShutdownGate:
    """Whether the process is draining, and how many requests it is serving."""

    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0


class DrainMiddleware:
    def __init__(self, app: ASGIApp, gate: ShutdownGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ALWAYS_OPEN:
            await self.app(scope, receive, send)
            return
        if self.gate.draining:
            shutting_down = ShuttingDown("the service is shutting down; retry on another replica")
            response = refusal(shutting_down, {"Connection": "close"})
            await response(scope, receive, send)
            return
        self.gate.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.inflight -= 1


class GracefulServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains: ready turns 503 at once, exit after in-flight work or the grace."""

    def __init__(self, config: uvicorn.Config, gate: ShutdownGate, grace_s: float) -> None:
        super().__init__(config)
        self.gate = gate
        self.grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.gate.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.gate.draining = True
        threading.Thread(target=self._exit_when_drained, args=(sig,), name="drain", daemon=True).start()

    def _exit_when_drained(self, sig: int) -> None:
        deadline = time.monotonic() + self.grace_s
        while self.gate.inflight > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        super().handle_exit(sig, None)
