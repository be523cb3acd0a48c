"""Real loopback HTTP(S) servers for the client's connection tests: a self-signed certificate, a JSON server.

Real sockets, not a scripted transport: httpx's TLS errors wrap httpcore's, which wrap ssl's, and only a real
handshake shows that chain (and whether a CA bundle is actually trusted).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HEALTH = {"status": "ok"}
STYLES = {"gallery": {"name": "style-gallery", "version": "v3"}, "styles": []}  # a /styles answer with no style


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and that key: valid in every way but trust.

    Written to ``folder`` as ``cert.pem`` and ``key.pem``; the certificate is its own CA bundle.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def answering(answers: Mapping[str, object]) -> type[BaseHTTPRequestHandler]:
    """A handler answering GET ``path`` with ``answers[path]`` as JSON (404 for other paths), quietly."""

    class Answering(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path in answers
            body = json.dumps(answers[self.path] if found else {"detail": "Not Found"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # quiet: a refused handshake is what some tests are for
            pass

    return Answering


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, *_: object) -> None:  # a refused handshake is expected here, not worth a traceback
        pass


def json_server(answers: Mapping[str, object] | None = None) -> QuietServer:
    """A plain HTTP server on a free loopback port answering ``answers`` (default: /healthz); not yet serving."""
    return QuietServer(("127.0.0.1", 0), answering({"/healthz": HEALTH} if answers is None else answers))


def with_tls(server: QuietServer, cert: Path, key: Path) -> QuietServer:
    """``server`` speaking TLS with ``cert`` (each connection's handshake in its own handler thread)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """``server`` answering from a thread until the block ends; then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
