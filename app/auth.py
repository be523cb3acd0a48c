"""API keys: with ``DEEPCANVAS_API_KEYS`` set, the routes that run a model need one.

A service on a public load balancer otherwise runs anyone's photos (and a minute of NST each) on its CPUs.
The keys guard ``/detect``, ``/classify``, ``/identify``, ``/verify`` and ``/stylize``, sent as
``Authorization: Bearer <key>``; health, metrics, the catalog (``/styles``, ``/models``), the web page and
the API documentation stay open, and ``/admin`` and enrolment keep their own token. The keys are held as
SHA-256 digests and compared in constant time, each of them, whichever matches.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import Forbidden, Unauthorized, refusal
from app.model_routes import MODEL_PATHS, route_path
from deepcanvas.credentials import header_safe

MIN_KEY_LENGTH = 16
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="deepcanvas"'}
MISSING = "this service needs an API key: send 'Authorization: Bearer <key>'"


def plain_secret(secret: str) -> bool:
    """Whether an API key or the admin token is usable: at least ``MIN_KEY_LENGTH`` characters that a header carries
    as they are (``deepcanvas.credentials.header_safe``, the client's own rule: printable ASCII, no whitespace)."""
    return len(secret) >= MIN_KEY_LENGTH and header_safe(secret)


def split_keys(value: str) -> tuple[str, ...]:
    """The comma-separated keys of ``DEEPCANVAS_API_KEYS``; ValueError names what makes one unusable."""
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if not keys:
        raise ValueError("api_keys: no key given (unset it to leave the routes open)")
    for number, key in enumerate(keys, 1):
        if not plain_secret(key):
            raise ValueError(
                f"api_keys: key {number} must be at least {MIN_KEY_LENGTH} printable ASCII characters without spaces"
            )
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKeys:
    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, secret: SecretStr) -> ApiKeys:
        return cls(tuple(_digest(key) for key in split_keys(secret.get_secret_value())))

    def accepts(self, key: str) -> bool:
        given = _digest(key)
        return any([hmac.compare_digest(given, digest) for digest in self.digests])  # every one, not the first


@dataclass(frozen=True)
class Refused:
    """The route a refused request was for (the keyed paths take no parameters: the path is the route)."""

    path: str


class ApiKeyMiddleware:
    """401 without ``Authorization: Bearer <key>``, 403 with a key that is not one of the service's; checked
    before the body is read, so a caller without a key costs the service no upload."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, paths: frozenset[str] = MODEL_PATHS) -> None:
        self.app = app
        self.keys = keys
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if path not in self.paths:
            await self.app(scope, receive, send)
            return
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            refused = refusal(Unauthorized(MISSING), CHALLENGE)
        elif not self.keys.accepts(key.strip()):
            refused = refusal(Forbidden("invalid API key"), CHALLENGE)
        else:
            await self.app(scope, receive, send)
            return
        scope["route"] = Refused(path)  # telemetry labels the refusal with its route, not "unmatched"
        await refused(scope, receive, send)


def document_api_keys(schema: dict[str, Any], paths: frozenset[str] = MODEL_PATHS) -> dict[str, Any]:
    """The OpenAPI ``schema`` with the bearer scheme on the keyed routes (the docs page's "Authorize")."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the service's API keys (DEEPCANVAS_API_KEYS)",
    }
    for path in paths:
        for operation in schema.get("paths", {}).get(path, {}).values():
            operation["security"] = [{"apiKey": []}]
            responses = operation.setdefault("responses", {})
            responses["401"] = {"description": "No API key: " + MISSING}
            responses["403"] = {"description": "Not one of the service's API keys"}
    return schema
