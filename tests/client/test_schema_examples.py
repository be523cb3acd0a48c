"""The examples the OpenAPI page shows are ones the shipped service would answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import app.schemas
import deepcanvas.schemas
from deepcanvas.schemas import StyleInfo

GALLERY_STORE = Path(__file__).resolve().parents[2] / "models" / "store" / "style-gallery"
STYLE_URL = re.compile(r"^/styles/(?P<name>[^/]+)/image$")


def _shipped_gallery() -> list[dict[str, Any]]:
    stable = json.loads((GALLERY_STORE / "aliases.json").read_text())["stable"]
    return list(json.loads((GALLERY_STORE / stable / "manifest.json").read_text())["gallery"])


def _examples(module: object) -> list[tuple[str, str, Any]]:
    """(model, field, example) for every field example of the module's pydantic models."""
    models = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseModel)]
    return [
        (model.__name__, name, example)
        for model in models
        for name, field in model.model_fields.items()
        for example in field.examples or []
    ]


def test_style_examples_name_a_style_of_the_shipped_gallery() -> None:
    gallery = {style["name"]: style for style in _shipped_gallery()}
    [name] = StyleInfo.model_fields["name"].examples or []
    assert name in gallery
    assert StyleInfo.model_fields["title"].examples == [gallery[name]["title"]]
    assert StyleInfo.model_fields["artist"].examples == [gallery[name]["artist"]]
    assert StyleInfo.model_fields["year"].examples == [gallery[name]["year"]]
    assert StyleInfo.model_fields["url"].examples == [f"/styles/{name}/image"]


def test_every_style_image_url_in_an_example_names_a_shipped_style() -> None:
    names = {style["name"] for style in _shipped_gallery()}
    urls = [
        (where, example)
        for module in (deepcanvas.schemas, app.schemas)
        for *where, example in _examples(module)
        if isinstance(example, str) and example.startswith("/styles/")
    ]
    assert urls, "no example URL found: the test would check nothing"
    for where, url in urls:
        match = STYLE_URL.match(url)
        assert match and match["name"] in names, (where, url)
