"""Trusting a private CA or a self-signed certificate: the clients' ``verify``, and httpx's ``SSL_CERT_FILE``.

Against a real TLS server on loopback whose certificate is self-signed (tests/support/tls.py): only a real
handshake shows that the bundle is what the connection trusts.
"""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from deepcanvas import AsyncClient, Client, ClientError, TLSError, UsageError
from tests.support.tls import self_signed

TIMEOUT = 30.0  # seconds: loopback answers at once, a loaded machine may still be slow


VERIFY_KINDS: dict[str, Callable[[Path], Path | str | ssl.SSLContext]] = {
    "path": lambda cert: cert,
    "str": str,
    "ssl-context": lambda cert: ssl.create_default_context(cafile=cert),
}


@pytest.mark.parametrize("kind", VERIFY_KINDS)
def test_a_ca_bundle_trusts_the_self_signed_service(tls_server: str, certificate: tuple[Path, Path], kind: str) -> None:
    verify = VERIFY_KINDS[kind](certificate[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # httpx 0.28 deprecated verify=<path>: not passed on so
        client = Client(tls_server, timeout=TIMEOUT, retries=0, verify=verify)
    with client:
        assert client.health().status == "ok"


@pytest.mark.parametrize("kind", VERIFY_KINDS)
def test_the_async_client_takes_the_same_ca_bundle(tls_server: str, certificate: tuple[Path, Path], kind: str) -> None:
    async def health() -> str:
        async with AsyncClient(tls_server, timeout=TIMEOUT, retries=0, verify=VERIFY_KINDS[kind](certificate[0])) as dc:
            return (await dc.health()).status

    assert asyncio.run(health()) == "ok"


def test_another_ca_bundle_does_not_trust_the_service(tls_server: str, tmp_path: Path) -> None:
    """The bundle is what the connection trusts: one of another CA still fails, as TLSError, not retried."""
    other, _ = self_signed(tmp_path)
    with Client(tls_server, timeout=TIMEOUT, retries=0, verify=other) as client, pytest.raises(TLSError):
        client.health()


def test_verify_false_connects_without_verifying(tls_server: str) -> None:
    with Client(tls_server, timeout=TIMEOUT, retries=0, verify=False) as client:
        assert client.health().status == "ok"


def test_ssl_cert_file_is_honoured_as_httpx_does(
    tls_server: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default ``verify=True`` httpx reads ``SSL_CERT_FILE`` (trust_env): the client must keep passing True
    on, not an SSLContext of its own, or the variable would be ignored."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with Client(tls_server, timeout=TIMEOUT, retries=0) as client:
        assert client.health().status == "ok"


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not-pem"])
def test_an_unreadable_ca_bundle_is_refused_when_the_client_is_made(tmp_path: Path, content: bytes | None) -> None:
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_bytes(content)
    for make in (Client, AsyncClient):
        with pytest.raises(UsageError, match="not a readable CA bundle") as raised:
            make("https://127.0.0.1:1", verify=bundle)
        assert isinstance(raised.value, ClientError) and str(bundle) in str(raised.value)


def test_an_ssl_cert_file_that_cannot_be_read_is_a_client_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx loads SSL_CERT_FILE when the client is made; a missing file was a bare FileNotFoundError."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match="SSL_CERT_FILE"):
        Client("https://127.0.0.1:1")
