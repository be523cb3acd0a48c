"""Connection failures that no retry mends are raised at once, and clearly; those that may pass are retried.

Against real sockets on loopback: a TLS server whose certificate no client trusts, and a plain HTTP server
asked for TLS (httpx's errors wrap httpcore's, which wrap ssl's: a scripted transport would not show that chain).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from deepcanvas import (
    AsyncClient,
    Client,
    ClientClosed,
    ClientError,
    InvalidURL,
    NotReady,
    ServiceUnreachable,
    TLSError,
)
from deepcanvas.cli import client_cli
from deepcanvas.client import shown_url
from tests.support.tls import json_server, serving


@pytest.fixture
def plain_server() -> Iterator[str]:
    """A plain HTTP server answering /healthz: its base URL, without a scheme."""
    with serving(json_server()) as server:
        yield f"127.0.0.1:{server.server_address[1]}"


def test_the_servers_answer_when_asked_right(plain_server: str) -> None:
    """The fixtures' servers work: what fails below fails for the reason the test names."""
    with Client(f"http://{plain_server}") as client:
        assert client.health().status == "ok"


def test_an_untrusted_certificate_is_raised_at_once_and_says_so(tls_server: str, sleeps: list[float]) -> None:
    with Client(tls_server, retries=3) as client, pytest.raises(TLSError) as raised:
        client.health()
    assert sleeps == []  # not retried: it would fail the same way
    assert "certificate" in str(raised.value) and "not retried" in str(raised.value)
    assert isinstance(raised.value, ServiceUnreachable)  # what callers caught before


def test_the_async_client_raises_an_untrusted_certificate_at_once(tls_server: str, sleeps: list[float]) -> None:
    async def health() -> None:
        async with AsyncClient(tls_server, retries=3) as client:
            await client.health()

    with pytest.raises(TLSError, match="certificate"):
        asyncio.run(health())
    assert sleeps == []


def test_https_to_a_plain_http_port_is_raised_at_once(plain_server: str, sleeps: list[float]) -> None:
    with Client(f"https://{plain_server}", retries=3) as client, pytest.raises(TLSError, match="not retried"):
        client.health()
    assert sleeps == []


def test_wait_ready_stops_at_a_certificate_it_cannot_trust(tls_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling would only repeat the failure until the timeout: the error comes at once instead."""

    def poll_again(seconds: float) -> None:
        raise AssertionError(f"wait_ready polled again after {seconds} s")

    monkeypatch.setattr("deepcanvas.client.time.sleep", poll_again)
    with Client(tls_server) as client, pytest.raises(TLSError):
        client.wait_ready(timeout=3600, interval=1)


def test_a_refused_connection_is_still_retried(sleeps: list[float]) -> None:
    server = json_server()
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    with Client(f"http://127.0.0.1:{port}", retries=2) as client, pytest.raises(ServiceUnreachable) as raised:
        client.health()
    assert not isinstance(raised.value, TLSError) and len(sleeps) == 2


@pytest.mark.parametrize(
    "url, said",
    [
        ("localhost:8000", "http:// or https://"),  # httpx would read the scheme "localhost"
        ("127.0.0.1:8000", "http:// or https://"),
        ("ftp://127.0.0.1", "http:// or https://"),
        ("http://", "http:// or https://"),
        ("http://127.0.0.1:99999", "port is 1 to 65535"),  # httpx would connect to another port
        ("http://127.0.0.1:0", "port is 1 to 65535"),
        ("http://[::1", "not a URL"),
    ],
)
def test_an_invalid_base_url_is_refused_when_the_client_is_made(url: str, said: str) -> None:
    with pytest.raises(InvalidURL, match=said) as raised:
        Client(url)
    with pytest.raises(InvalidURL):
        AsyncClient(url)
    assert isinstance(raised.value, ClientError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize("given", ["option", "variable"])
def test_the_cli_says_an_invalid_url_is_a_usage_error_without_connecting(
    tmp_path: Path, sleeps: list[float], given: str
) -> None:
    """Exit status 2, as typer's own usage errors: the command line is wrong, nothing was sent (1 is for calls that
    failed), whether the URL came from --url or DEEPCANVAS_URL."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not looked at")
    url = "http://127.0.0.1:99999"
    args, env = (["--url", url], {}) if given == "option" else ([], {"DEEPCANVAS_URL": url})
    result = CliRunner().invoke(client_cli, ["detect", str(photo), *args], env={"COLUMNS": "400"} | env)
    assert result.exit_code == 2 and "port is 1 to 65535" in result.stderr
    assert "--url" in result.stderr and "DEEPCANVAS_URL" in result.stderr
    assert "Traceback" not in result.output and sleeps == []


SECRET = "s3cr3t"  # the password in the URLs below: no message may show it


@pytest.mark.parametrize(
    "url, said, shown",
    [
        (f"https://user:{SECRET}@h:99999/", "port is 1 to 65535", "'https://h:99999/'"),
        (f"user:{SECRET}@h:8000", "http:// or https://", "'h:8000'"),  # httpx: the scheme "user"
        (f"ftp://user:{SECRET}@h", "http:// or https://", "'ftp://h'"),
        (f"https://user:{SECRET}@h:port/", "not a URL: Invalid port: 'port'", "'https://h:port/'"),
        ("https://user:s3/cr3t@h", "not a URL: its user and password", "'https://h'"),  # httpx reads s3 as a port
    ],
)
def test_an_invalid_url_is_shown_without_its_user_and_password(url: str, said: str, shown: str) -> None:
    for make in (Client, AsyncClient):
        with pytest.raises(InvalidURL, match=said) as raised:
            make(url)
        message = str(raised.value)
        assert message.startswith(shown) and "s3" not in message and "user:" not in message


def test_the_cli_shows_an_invalid_url_without_its_password(sleeps: list[float]) -> None:
    url = f"https://user:{SECRET}@h:99999/"
    result = CliRunner().invoke(client_cli, ["styles", "--url", url], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and "'https://h:99999/': a port is 1 to 65535" in result.stderr
    assert SECRET not in result.output and "user" not in result.output


# A password with a "#" or "?" that is not percent-encoded: httpx reads the "#" or "?" as where the query or
# fragment begins, so the user and password become a host and port (admin:4242 below) or an invalid port.
UNENCODED = [
    ("https://user:p#ss@host/", "https://host/", "#ss"),
    ("http://admin:4242#Secret@127.0.0.1:9", "http://127.0.0.1:9", "Secret"),
    ("https://user:p?ss@host:8443", "https://host:8443", "?ss"),
]


@pytest.mark.parametrize("url, shown, secret", UNENCODED)
def test_shown_url_drops_everything_up_to_the_last_at_even_after_a_hash_or_question_mark(
    url: str, shown: str, secret: str
) -> None:
    assert shown_url(url) == shown
    assert shown_url("http://u:a@b#c?d@h:1/") == "http://h:1/" and shown_url("u:p#w@h") == "h"


@pytest.mark.parametrize("url, shown, secret", UNENCODED)
def test_a_base_url_with_a_query_or_fragment_is_refused_without_its_password(url: str, shown: str, secret: str) -> None:
    """Refused when made, so no request goes to the host httpx would read (admin, port 4242); the message names
    the URL without its user and password and says to percent-encode a password's reserved characters."""
    for make in (Client, AsyncClient):
        with pytest.raises(InvalidURL, match="query or fragment") as raised:
            make(url)
        message = str(raised.value)
        assert message.startswith(repr(shown)) and "percent-encode" in message
        assert secret not in message and "admin" not in message and "4242" not in message and "user:" not in message


@pytest.mark.parametrize("url, shown, secret", UNENCODED)
def test_the_cli_refuses_a_url_with_a_query_or_fragment_without_its_password(
    sleeps: list[float], url: str, shown: str, secret: str
) -> None:
    result = CliRunner().invoke(client_cli, ["styles", "--url", url], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and f"{shown!r}: a base URL takes no query or fragment" in result.stderr
    assert secret not in result.output and "admin" not in result.output and "4242" not in result.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/?x=1", "http://127.0.0.1:8000#top", "http://h/?"])
def test_a_base_url_with_a_query_or_fragment_and_no_password_is_refused(url: str) -> None:
    with pytest.raises(InvalidURL, match="query or fragment"):
        Client(url)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def test_an_unreachable_service_is_named_without_the_password_in_its_url() -> None:
    with Client(f"http://user:{SECRET}@dc", retries=0, transport=httpx.MockTransport(_refused)) as client:
        with pytest.raises(ServiceUnreachable) as raised:
            client.health()
        with pytest.raises(NotReady) as not_ready:
            client.wait_ready(timeout=0)
    assert str(raised.value) == "GET http://dc/healthz: ConnectError: refused"
    assert str(not_ready.value).startswith("http://dc not ready")
    with pytest.raises(ClientClosed) as closed:
        client.health()
    assert "client of http://dc is closed" in str(closed.value) and SECRET not in str(closed.value)


def test_the_async_client_names_an_unreachable_service_without_the_password() -> None:
    async def health() -> None:
        transport = httpx.MockTransport(_refused)
        async with AsyncClient(f"http://user:{SECRET}@dc", retries=0, transport=transport) as client:
            await client.health()

    with pytest.raises(ServiceUnreachable, match=r"^GET http://dc/healthz: ConnectError") as raised:
        asyncio.run(health())
    assert SECRET not in str(raised.value)


def test_a_tls_failure_is_named_without_the_password_in_the_url(tls_server: str) -> None:
    url = tls_server.replace("https://", f"https://user:{SECRET}@")
    with Client(url, retries=0) as client, pytest.raises(TLSError) as raised:
        client.health()
    assert str(raised.value).startswith(f"GET {tls_server}/healthz: TLS failed")
    assert SECRET not in str(raised.value) and "user" not in str(raised.value)


def test_the_user_and_password_in_the_url_are_still_sent() -> None:
    """Only the messages leave them out: httpx sends a URL's user and password as Basic credentials."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"status": "ok"})

    with Client(f"http://user:{SECRET}@dc", transport=httpx.MockTransport(answer)) as client:
        client.health()
    assert sent[0].headers["authorization"] == "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
