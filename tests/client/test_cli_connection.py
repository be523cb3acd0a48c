"""The connection options of the client's commands: every command that calls the service takes the same ones
(--url, --api-key, --timeout, --retries, --ca-bundle, --insecure), each reaches the client, and a service with a
self-signed certificate is trusted through --ca-bundle (or SSL_CERT_FILE) over a real loopback TLS connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

import deepcanvas.cli as cli_module
from app.cli import SERVER_COMMANDS, cli
from deepcanvas import ServiceUnreachable
from tests.support.images import face_like_photo
from tests.support.tls import STYLES

CONNECTION_OPTIONS = {"--url", "--api-key", "--timeout", "--retries", "--ca-bundle", "--insecure"}
WIDE = {"COLUMNS": "400"}  # rich would wrap a long message at 80 columns
# Each command that calls the service, with the arguments it needs besides the connection options ({photo},
# {out} and {root} filled in per test); identities commands also get --admin-token.
INVOCATIONS: dict[str, list[str]] = {
    "detect": ["{photo}"],
    "classify": ["{photo}"],
    "stylize": ["{photo}", "--style-name", "starry-night", "-o", "{out}"],
    "styles": [],
    "identify": ["{photo}"],
    "verify": ["{photo}", "{photo}"],
    "identities list": [],
    "identities show": ["3f2a9c0d"],
    "identities enrol": ["Ada Lovelace", "{photo}"],
    "identities add-faces": ["3f2a9c0d", "{photo}"],
    "identities delete": ["3f2a9c0d"],
    "identities import-lfw": ["{root}"],
}


def _client_commands() -> dict[str, Any]:
    """Every command of ``deepcanvas`` but the service's own (serve, models, train, ...), by its full name."""
    found: dict[str, Any] = {}

    def walk(command: Any, name: str) -> None:
        if isinstance(command, TyperGroup):
            for sub_name, sub in command.commands.items():
                walk(sub, f"{name} {sub_name}".strip())
        elif name.split()[0] not in SERVER_COMMANDS:
            found[name] = command

    walk(typer.main.get_command(cli), "")
    return found


def _argv(name: str, tmp_path: Path) -> list[str]:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(face_like_photo(64, 48))
    (tmp_path / "lfw").mkdir(exist_ok=True)
    fill = {"photo": str(photo), "out": str(tmp_path / "painted.png"), "root": str(tmp_path / "lfw")}
    admin = ["--admin-token", "admin-token"] if name.startswith("identities") else []
    return [*name.split(), *(arg.format(**fill) for arg in INVOCATIONS[name]), *admin]


def test_the_invocations_below_cover_every_client_command() -> None:
    assert set(_client_commands()) == set(INVOCATIONS)


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_every_command_that_calls_the_service_takes_the_same_connection_options(name: str) -> None:
    command = _client_commands()[name]
    options = {opt for param in command.params for opt in param.opts}
    assert options >= CONNECTION_OPTIONS, f"{name} lacks {sorted(CONNECTION_OPTIONS - options)}"


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_every_command_that_calls_the_service_can_answer_in_json(name: str) -> None:
    """Scripts parse every command's answer alike; identities delete and import-lfw printed only a line."""
    assert "--json" in {opt for param in _client_commands()[name].params for opt in param.opts}


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of each ``Client`` the commands make; the client then fails as an unreachable service would."""
    calls: list[dict[str, Any]] = []

    def record(url: str, **options: Any) -> None:
        calls.append({"url": url, **options})
        raise ServiceUnreachable("recorded, not sent")

    monkeypatch.setattr(cli_module, "Client", record)
    return calls


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_each_connection_option_reaches_the_client(name: str, tmp_path: Path, made: list[dict[str, Any]]) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("read by the client, which is replaced here")
    connection = ["--url", "https://dc.example:8443", "--api-key", "key-123", "--timeout", "7.5", "--retries", "5"]
    argv = [*_argv(name, tmp_path), *connection, "--ca-bundle", str(bundle)]
    result = CliRunner().invoke(cli, argv, env=WIDE)
    assert result.exit_code == 1, result.output  # the recorder's ServiceUnreachable, not a usage error
    assert "recorded, not sent" in result.stderr
    [options] = made
    assert options["url"] == "https://dc.example:8443"
    assert (options["api_key"], options["timeout"], options["retries"]) == ("key-123", 7.5, 5)
    assert options["verify"] == bundle


def test_the_api_key_comes_from_deepcanvas_api_key_as_before(tmp_path: Path, made: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli, _argv("styles", tmp_path), env={"DEEPCANVAS_API_KEY": "key-env"})
    assert result.exit_code == 1, result.output
    assert made[0]["api_key"] == "key-env" and made[0]["verify"] is True


def _styles(url: str, *options: str, env: dict[str, str] | None = None) -> Result:
    argv = ["styles", "--json", "--url", url, "--timeout", "30", "--retries", "0", *options]
    return CliRunner().invoke(cli, argv, env=WIDE | (env or {}))


def test_ca_bundle_trusts_a_self_signed_service(tls_server: str, certificate: tuple[Path, Path]) -> None:
    result = _styles(tls_server, "--ca-bundle", str(certificate[0]))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == STYLES


def test_without_a_bundle_the_certificate_is_refused_and_the_error_names_the_option(tls_server: str) -> None:
    result = _styles(tls_server)
    assert result.exit_code == 1 and result.stdout == ""
    assert "TLS failed" in result.stderr and "--ca-bundle" in result.stderr


def test_ssl_cert_file_trusts_the_service_as_httpx_reads_it(tls_server: str, certificate: tuple[Path, Path]) -> None:
    result = _styles(tls_server, env={"SSL_CERT_FILE": str(certificate[0]), "SSL_CERT_DIR": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == STYLES


def test_insecure_connects_without_verifying_and_says_so_on_stderr(tls_server: str) -> None:
    result = _styles(tls_server, "--insecure")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == STYLES  # the warning keeps out of what scripts parse
    assert "not verified" in result.stderr


def test_insecure_and_a_ca_bundle_together_are_a_usage_error(tls_server: str, certificate: tuple[Path, Path]) -> None:
    result = _styles(tls_server, "--insecure", "--ca-bundle", str(certificate[0]))
    assert result.exit_code == 2 and "not both" in result.output


def test_a_ca_bundle_the_client_cannot_read_is_a_usage_error(tmp_path: Path) -> None:
    """Exit status 2: the command line is wrong and nothing was sent (1 is for a call that failed)."""
    bundle = tmp_path / "notes.txt"
    bundle.write_text("not a certificate")
    result = _styles("https://127.0.0.1:1", "--ca-bundle", str(bundle))
    assert result.exit_code == 2 and "not a readable CA bundle" in result.stderr, result.output


def test_an_admin_command_without_a_token_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    """It said "admin calls need the client's admin_token": an argument of the Python client, not an option here."""
    result = CliRunner().invoke(cli, ["identities", "list", "--url", "http://127.0.0.1:9"], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "--admin-token" in result.stderr and "Traceback" not in result.output
