"""A throw-away PostgreSQL cluster on loopback (Debian's binaries), for tests of the identity database.

initdb refuses root, so as root every command runs as the ``postgres`` user (``runuser``), in a temporary
directory it owns. ``start_postgres`` returns None when the binaries are absent (the caller skips).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from app.bench import free_port


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, if any."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs runuser to start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--"]


@dataclass
class PostgresCluster:
    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*_as_postgres(), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        log = self.data / "server.log"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data / "db"), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data / "db"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*_as_postgres(), str(self.bin / "pg_ctl"), "-D", str(self.data / "db"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.data, ignore_errors=True)


def start_postgres() -> PostgresCluster | None:
    """A new cluster, started (trust authentication on loopback only); None without PostgreSQL binaries."""
    binaries = postgres_bin()
    if binaries is None:
        return None
    data = Path(tempfile.mkdtemp(prefix="deepcanvas-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    cluster = PostgresCluster(binaries, data, free_port())
    cluster._run(str(binaries / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    cluster.start()
    return cluster


class SilentProxy:
    """A TCP proxy on loopback in front of ``port`` that can go silent: bytes are taken and never passed on, and no
    connection is closed, as when a database's address goes dark (a failover, a partition) rather than refusing."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.silent = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.silent.is_set() and not self._closed:
                    time.sleep(0.05)  # held, neither passed on nor refused
                sink.sendall(data)

    def close(self) -> None:
        self._closed = True
        self.silent.clear()
        self.listener.close()
