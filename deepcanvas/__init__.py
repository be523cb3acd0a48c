"""The DeepCanvas Python client: ``Client``, ``AsyncClient``, their typed results and errors.

Needs only httpx, pydantic and Pillow, so it installs into a user's own environment; the service
(``app``, ``models``) imports the shared documents from ``deepcanvas.schemas``, never the reverse.
"""

from deepcanvas.calls import Stylized
from deepcanvas.client import AsyncClient, Client
from deepcanvas.errors import (
    APIError,
    BadGateway,
    ClientClosed,
    ClientError,
    InvalidURL,
    NotReady,
    OutcomeUnknown,
    RetryAfterTooLong,
    ServiceUnavailable,
    ServiceUnreachable,
    TLSError,
    TooManyRequests,
    UnexpectedResponse,
    UsageError,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "BadGateway",
    "Client",
    "ClientClosed",
    "ClientError",
    "InvalidURL",
    "NotReady",
    "OutcomeUnknown",
    "RetryAfterTooLong",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Stylized",
    "TLSError",
    "TooManyRequests",
    "UnexpectedResponse",
    "UsageError",
]
