"""What makes an API key or the admin token one an HTTP header carries as it is: the rule the client checks its
credentials by and the service its configured ones (``app.auth``), written once, here, so they cannot drift."""

from __future__ import annotations


def header_safe(secret: str) -> bool:
    """Whether ``secret`` is printable ASCII without whitespace: a pasted line break or a padded value would never
    match what a client sends, nor would a non-ASCII one (HTTP clients refuse to send it, and a server reads header
    bytes as latin-1, not UTF-8)."""
    return secret.isascii() and secret.isprintable() and not any(ch.isspace() for ch in secret)
