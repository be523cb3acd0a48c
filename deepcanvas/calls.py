"""Each endpoint as a ``Call``: what to send and how to read the answer, shared by both clients."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeAlias, TypeVar

import httpx
from PIL import Image

from deepcanvas.schemas import (
    ActivateRequest,
    ActivateResponse,
    ClassifyResponse,
    DetectResponse,
    Health,
    ModelRef,
    ModelsResponse,
    ParamsDocument,
    Readiness,
    StylesResponse,
)

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | IO[bytes] | Image.Image
FileField: TypeAlias = tuple[str, bytes]
T = TypeVar("T")


@dataclass(frozen=True)
class Stylized:
    """The painted image as the service encoded it, and the style model that painted it."""

    data: bytes
    media_type: str
    model: ModelRef

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.data))

    def save(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    repeatable: bool = True  # safe to send twice: no effect beyond its answer, or conditional
    files: list[tuple[str, FileField]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok_statuses: frozenset[int] = frozenset({200})


def image_file(image: ImageInput, default_name: str = "image") -> FileField:
    """A file field from a path, bytes, a binary file object or a PIL image (sent as lossless PNG)."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return f"{default_name}.png", buffer.getvalue()
    if isinstance(image, bytes | bytearray | memoryview):
        return default_name, bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return path.name, path.read_bytes()
    if hasattr(image, "read"):
        name = Path(str(getattr(image, "name", default_name))).name
        return name, image.read()
    raise TypeError(f"an image is a path, bytes, a binary file object or a PIL image, not {type(image).__name__}")


def _form(**values: Any) -> dict[str, Any]:
    """Form fields without the ones left unset, booleans as the service spells them."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items() if v is not None}


def _model(kind: type[T]) -> Callable[[httpx.Response], T]:
    return lambda response: kind.model_validate_json(response.content)  # type: ignore[attr-defined]


def detect(
    image: ImageInput,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    imgsz: int | None,
    min_size: float | None = None,
    tile: str | None = None,
) -> Call[DetectResponse]:
    form = _form(conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_size=min_size, tile=tile)
    return Call("POST", "/detect", _model(DetectResponse), files=[("image", image_file(image))], data=form)


def classify(
    image: ImageInput,
    detect_faces: bool,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    imgsz: int | None,
    min_score: float | None = None,
    tile: str | None = None,
) -> Call[ClassifyResponse]:
    form = _form(
        detect_faces=detect_faces, conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_score=min_score, tile=tile
    )
    return Call("POST", "/classify", _model(ClassifyResponse), files=[("image", image_file(image))], data=form)


def _stylized(response: httpx.Response) -> Stylized:
    model = ModelRef(name=response.headers.get("x-model-name", ""), version=response.headers.get("x-model-version", ""))
    return Stylized(response.content, response.headers.get("content-type", ""), model)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def stylize(
    content: ImageInput,
    style: ImageInput | Sequence[ImageInput] | None,
    style_name: str | Sequence[str] | None,
    style_weights: Sequence[float] | None,
    alpha: float | None,
    preserve_color: bool,
    method: Literal["adain", "nst"],
    max_side: int | None,
    format: Literal["png", "jpeg"],
) -> Call[Stylized]:
    """One content photo; styles as uploaded images, gallery names, or both (several: interpolated)."""
    files = [("content", image_file(content, "content"))]
    files += [("style", image_file(s, "style")) for s in _as_list(style)]
    form = _form(alpha=alpha, preserve_color=preserve_color, method=method, max_side=max_side, format=format)
    form |= {"style_name": _as_list(style_name), "style_weights": [str(w) for w in _as_list(style_weights)]}
    return Call("POST", "/stylize", _stylized, files=files, data={k: v for k, v in form.items() if v != []})


def styles() -> Call[StylesResponse]:
    return Call("GET", "/styles", _model(StylesResponse))


def models() -> Call[ModelsResponse]:
    return Call("GET", "/models", _model(ModelsResponse))


def health() -> Call[Health]:
    return Call("GET", "/healthz", _model(Health))


def readiness() -> Call[Readiness]:
    """/readyz answers 503 with the same document while models load: an answer, not an error."""
    return Call("GET", "/readyz", _model(Readiness), ok_statuses=frozenset({200, 503}))


def params(admin: dict[str, str]) -> Call[ParamsDocument]:
    return Call("GET", "/admin/params", _model(ParamsDocument), headers=admin)


def update_params(admin: dict[str, str], patch: dict[str, Any], etag: str | int) -> Call[ParamsDocument]:
    """Conditional on ``etag``, so sending it twice cannot apply it twice (the second gets 409)."""
    if_match = f'"{etag}"' if isinstance(etag, int) else etag
    headers = admin | {"If-Match": if_match}
    return Call("PATCH", "/admin/params", _model(ParamsDocument), json=patch, headers=headers)


def activate(admin: dict[str, str], name: str, version: str) -> Call[ActivateResponse]:
    """Not repeatable: a second switch would record the first as ``previous``, and rollback would undo nothing."""
    body = ActivateRequest(version=version).model_dump()
    path = f"/admin/models/{name}/activate"
    return Call("POST", path, _model(ActivateResponse), repeatable=False, json=body, headers=admin)


def rollback(admin: dict[str, str], name: str) -> Call[ActivateResponse]:
    return Call("POST", f"/admin/models/{name}/rollback", _model(ActivateResponse), repeatable=False, headers=admin)
