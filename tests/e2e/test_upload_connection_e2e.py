"""Uploads cut short on the real server: one refused mid-stream ends its connection (the server stops reading
what the client goes on sending); one whose client leaves is counted as 499, not as the client's 400."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.fakes import make_fake_store
from tests.support.servers import LiveServer

pytestmark = pytest.mark.e2e
LIMIT = 64 * 1024
PART = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
HEAD = (
    b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real server; its models need not load (the body limit stands in front of them)."""
    root = tmp_path_factory.mktemp("upload-connection")
    store = make_fake_store(root / "store")
    env = {"DEEPCANVAS_CACHE_DIR": str(root / "cache"), "DEEPCANVAS_MAX_UPLOAD_BYTES": str(LIMIT)}
    server = LiveServer.start(store.as_uri(), env)
    try:
        server.wait_for("/healthz", timeout=120)
        yield server
    finally:
        server.stop()


def _stream_until_closed(server: LiveServer, seconds: float) -> tuple[bytes, bool]:
    """Send a chunked upload without end; returns what the server answered and whether it closed the socket."""
    host, port = server.url.removeprefix("http://").split(":")
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"y" * 16 * 1024)
    answer = b""
    deadline = time.monotonic() + seconds
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(HEAD + b"%x\r\n%s\r\n" % (len(PART), PART))
        while time.monotonic() < deadline:
            if select.select([sock], [], [], 0.01)[0]:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    return answer, True
                if not data:
                    return answer, True
                answer += data
                continue
            try:
                sock.sendall(chunk)  # the client keeps sending, as a client that never reads would
            except (BrokenPipeError, ConnectionResetError):
                return answer, True
    return answer, False


def test_a_chunked_upload_over_the_limit_gets_413_and_its_connection_closed(server: LiveServer) -> None:
    answer, closed = _stream_until_closed(server, seconds=30)  # the refusal ends it at once; 30 s bounds a hang
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert closed, "the server kept reading the refused upload"
    assert b"connection: close" in answer.lower()


def _count(server: LiveServer, series: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_a_client_that_leaves_mid_upload_is_counted_as_499(server: LiveServer) -> None:
    left = 'deepcanvas_requests_total{method="POST",route="/detect",status="499"}'
    refused = 'deepcanvas_requests_total{method="POST",route="/detect",status="400"}'
    before_left, before_refused = _count(server, left), _count(server, refused)
    host, port = server.url.removeprefix("http://").split(":")
    head = HEAD.replace(b"Transfer-Encoding: chunked", b"Content-Length: 50000")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + PART + b"y" * 1000)
        time.sleep(0.3)  # the body is being read when the client goes
    deadline = time.monotonic() + 30  # bounds a hang: the count comes once the server sees the socket close
    while _count(server, left) == before_left and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _count(server, left) == before_left + 1
    assert _count(server, refused) == before_refused
