"""Real servers for tests: moto_server (S3 on loopback) and ``deepcanvas serve`` as a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.bench import free_port

BIN = Path(sys.executable).parent
# A test's request to a quick endpoint (/readyz, /styles, /metrics...) of a real server: httpx's default 5 s is
# not much for a server busy painting or under a load test on a loaded 2-core runner. Only a hang should fail.
HTTP_TIMEOUT = 60.0


def _executable(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def queue_depth(slot: str) -> str:
    """The pattern of a model slot's queue depth in /metrics, its value the group."""
    return rf'^deepcanvas_queue_depth\{{[^}}]*slot="{re.escape(slot)}"[^}}]*\}} (\S+)$'


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, path: str, timeout: float, status: int = 200) -> httpx.Response:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                # each try may take what is left (a slow answer on a loaded machine is still an answer)
                last = httpx.get(self.url + path, timeout=max(1.0, min(HTTP_TIMEOUT, deadline - time.monotonic())))
                if last.status_code == status:
                    return last
            except httpx.TransportError as error:
                last = error
            time.sleep(0.2)
        raise TimeoutError(f"{self.url}{path} not {status} after {timeout}s (last: {last}):\n{self.log()[-4000:]}")

    def wait_in_flight(self, count: int = 1, timeout: float = 60) -> None:
        """Until ``count`` requests besides the scrape itself are being served (/metrics' in-flight gauge): a test
        that must act while a request runs waits for it instead of guessing how long its start takes."""
        self.wait_metric(r"^deepcanvas_inflight_requests (\S+)$", count + 1, timeout)  # the scrape counts itself

    def wait_slot_busy(self, slot: str, timeout: float = 60) -> None:
        """Until a model slot has work waiting or running (/metrics' queue depth): on an idle slot (one thread),
        its job is running then, e.g. an NST optimisation, not still in the upload, decoding or queueing."""
        self.wait_metric(queue_depth(slot), 1, timeout)

    def wait_slot_idle(self, slot: str, timeout: float = 60) -> None:
        """Until a model slot has nothing waiting or running (a stopped NST optimisation has ended)."""
        self.wait_metric(queue_depth(slot), 0, timeout, rise=False)

    def wait_metric(self, pattern: str, at_least: float, timeout: float = 60, rise: bool = True) -> None:
        """Until the value that ``pattern`` (a multiline regex, the value its group) finds in /metrics is
        ``at_least`` (with ``rise`` false: at most that)."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = httpx.get(self.url + "/metrics", timeout=HTTP_TIMEOUT).text
            found = re.search(pattern, metrics, re.MULTILINE)
            if found and (float(found.group(1)) >= at_least if rise else float(found.group(1)) <= at_least):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pattern} not {at_least} after {timeout}s:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _spawn(args: list[str], env: dict[str, str], url: str) -> ServerProcess:
    log_path = Path(tempfile.mkstemp(prefix="server-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
    return ServerProcess(process, url, log_path)


@dataclass
class MotoServer(ServerProcess):
    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def start_moto_server(port: int | None = None) -> MotoServer:
    port = port or free_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    spawned = _spawn([_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)], env, f"http://127.0.0.1:{port}")
    server = MotoServer(spawned.process, spawned.url, spawned.log_path)
    server.wait_for("/moto-api/", timeout=120)  # moto imports for seconds, more on a loaded machine
    return server


@dataclass
class LiveServer(ServerProcess):
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, store: str, env: dict[str, str] | None = None, port: int | None = None) -> LiveServer:
        port = port or free_port()
        args = [_executable("deepcanvas"), "serve", "--host", "127.0.0.1", "--port", str(port), "--store", store]
        spawned = _spawn(args, env or {}, f"http://127.0.0.1:{port}")
        return cls(spawned.process, spawned.url, spawned.log_path, env or {})

    def wait_ready(self, timeout: float = 180) -> httpx.Response:
        return self.wait_for("/readyz", timeout)

    @classmethod
    @contextmanager
    def ready(cls, store: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
        """A started server, ready before the block runs, stopped after it (for fixtures to yield)."""
        server = cls.start(store=store, env=env)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()
