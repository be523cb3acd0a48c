"""The client tests' loopback TLS service (tests/support/tls.py): a self-signed certificate, and a server with it;
and the client's waits, recorded instead of slept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tls import HEALTH, STYLES, json_server, self_signed, serving, with_tls


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """The service's self-signed certificate (its own CA bundle) and key."""
    folder = tmp_path / "service"
    folder.mkdir()
    return self_signed(folder)


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[str]:
    """An HTTPS server on loopback presenting ``certificate``, answering GET /healthz (``HEALTH``) and GET /styles
    (``STYLES``): its base URL. No client trusts it unless given ``certificate``."""
    with serving(with_tls(json_server({"/healthz": HEALTH, "/styles": STYLES}), *certificate)) as server:
        yield f"https://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's waits, sync and async, recorded instead of slept."""
    waited: list[float] = []

    async def record(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("deepcanvas.client.time.sleep", waited.append)
    monkeypatch.setattr("deepcanvas.client.asyncio.sleep", record)
    return waited
