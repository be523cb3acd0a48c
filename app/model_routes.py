"""The routes that run a model, as the middlewares that treat them apart match them (API keys, disconnects)."""

from __future__ import annotations

from starlette.types import Scope

MODEL_PATHS = frozenset({"/detect", "/classify", "/identify", "/verify", "/stylize"})


def route_path(scope: Scope) -> str:
    """The path the router matches: behind a prefix (``root_path``) the scope's path carries it too."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
