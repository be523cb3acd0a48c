"""A throw-away PostgreSQL cluster on loopback (Debian's binaries), for tests of the identity database.

initdb refuses root, so as root every command runs as the ``postgres`` user (``runuser``), in a temporary
directory it owns. ``start_postgres`` returns None when the binaries are absent (the caller skips).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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
