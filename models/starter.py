"""The embedded default store's untrained artifacts, made by the project's own code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from models.artifact import Manifest


def write_untrained_store(store: Path) -> list[Manifest]:
    """One untrained artifact per role under ``store/<name>/<version>``, each aliased ``stable``."""
    from models.classifier.starter import make_untrained_classifier
    from models.detector.starter import make_untrained_detector
    from models.style.gallery import make_gallery_artifact
    from models.style.starter import make_untrained_style

    makers: list[Callable[[Path], Manifest]] = [
        make_untrained_detector,
        make_untrained_classifier,
        make_untrained_style,
        make_gallery_artifact,
    ]
    manifests = []
    for make in makers:
        staging = store / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        manifest = make(staging)
        target = store / manifest.name / manifest.version
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        set_local_alias(store, manifest.name, "stable", manifest.version)
        manifests.append(manifest)
    return manifests


def set_local_alias(store: Path, name: str, alias: str, version: str) -> None:
    path = store / name / "aliases.json"
    aliases = json.loads(path.read_text()) if path.exists() else {}
    aliases[alias] = version
    path.write_text(json.dumps(aliases, indent=2) + "\n")
