"""Hostile transport against the real server: stalled, trickling, lying and oversized uploads."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def strict_server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "DEEPCANVAS_BODY_TIMEOUT_S": "1.5",
        "DEEPCANVAS_MAX_UPLOAD_BYTES": str(LIMIT),
    }
    with LiveServer.ready(embedded_store.as_uri(), env) as server:
        yield server


def _raw_request(server: LiveServer, head: bytes, chunks: list[bytes], pause: float) -> tuple[bytes, float]:
    """Send ``head`` then each chunk after ``pause`` seconds; returns the raw answer and the seconds it took."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], pause)[0]:
                break  # the server answered before the body was complete
            try:
                sock.sendall(chunk)
            except OSError:
                break
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer, time.monotonic() - started


PART = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


def _head(length: int | None) -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n{size}\r\n").encode()


def test_a_stalled_upload_gets_408(strict_server: LiveServer) -> None:
    answer, seconds = _raw_request(strict_server, _head(10_000) + b"--b\r\n", [], 0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert seconds < 10


def test_a_trickling_upload_is_cut_off_at_the_body_deadline(strict_server: LiveServer) -> None:
    """The trickle would last 20 s; cut off at the 1.5 s deadline it ends far sooner, also on a loaded machine."""
    answer, seconds = _raw_request(strict_server, _head(10_000) + PART, [b"x" * 10] * 100, 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert seconds < 15


def test_a_chunked_body_over_the_limit_is_refused_before_it_is_read_whole(strict_server: LiveServer) -> None:
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"y" * 64 * 1024)
    first = b"%x\r\n%s\r\n" % (len(PART), PART)
    answer, _ = _raw_request(strict_server, _head(None), [first] + [chunk] * 32, 0.0)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_declared_length_over_the_limit_is_refused_at_once(strict_server: LiveServer) -> None:
    answer, seconds = _raw_request(strict_server, _head(LIMIT + 1), [], 0)
    # not after the body deadline (a 408 at 1.5 s) nor when the socket gives up (20 s): seconds on a loaded machine
    assert answer.startswith(b"HTTP/1.1 413") and seconds < 10


def test_the_server_stays_healthy_after_hostile_uploads(strict_server: LiveServer) -> None:
    assert httpx.get(f"{strict_server.url}/readyz", timeout=30).status_code == 200
