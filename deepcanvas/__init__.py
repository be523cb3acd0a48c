"""The DeepCanvas Python client: ``Client``, ``AsyncClient``, their typed results and errors.

Needs only httpx, pydantic and Pillow, so it installs into a user's own environment; the service
(``app``, ``models``) imports the shared documents from ``deepcanvas.schemas``, never the reverse.
"""

from deepcanvas.calls import Stylized
from deepcanvas.client import AsyncClient, Client
from deepcanvas.errors import APIError, ClientError, ServiceUnavailable, ServiceUnreachable, UnexpectedResponse

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "Stylized",
    "UnexpectedResponse",
]
