"""Each endpoint as a ``Call``: what to send and how to read the answer, shared by both clients."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Literal, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
from PIL import Image, ImageOps

from deepcanvas.errors import ImageNotReadable, ImageTypeError, UsageError
from deepcanvas.schemas import (
    ActivateRequest,
    ActivateResponse,
    ClassifyResponse,
    DetectResponse,
    Health,
    IdentifyResponse,
    IdentityInfo,
    IdentityPage,
    ModelRef,
    ModelsResponse,
    ParamsDocument,
    Readiness,
    StylesResponse,
    VerifyResponse,
)

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | IO[bytes] | Image.Image
# /detect's tile (and /classify's): also read a large photo as overlapping tiles; None: the model's default.
Tile: TypeAlias = Literal["auto", "on", "off"]
FileField: TypeAlias = tuple[str, bytes]
T = TypeVar("T")


@dataclass(frozen=True)
class Stylized:
    """The painted image as the service encoded it, the style model that painted it, and NST's step count."""

    data: bytes
    media_type: str
    model: ModelRef
    nst_steps: int | None = None  # method=nst: the optimiser steps its time budget allowed

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
    # Answers that mean success too once an earlier attempt of this call may have been applied (its connection dropped
    # after sending, or a gateway's 502): a deletion's 404 then says the identity is gone, most likely by that attempt.
    ok_if_repeated: frozenset[int] = frozenset()


PNG_MODES = frozenset({"1", "L", "LA", "I;16", "I;16B", "P", "RGB", "RGBA"})  # what Pillow writes as PNG as is
ALPHA_MODES = {"La": "LA", "PA": "RGBA", "RGBa": "RGBA"}  # the other modes with an alpha band (LAB's A is a colour)


def png_ready(image: Image.Image) -> Image.Image:
    """``image`` in a mode PNG holds: as it is when it can, else what the service would make of it.

    Colour spaces (CMYK, YCbCr, LAB, HSV, RGBX) become RGB; premultiplied or palette alpha keeps its alpha. 32-bit
    integer and float images become 8-bit grey as the service scales them: integers over 255 as 16-bit
    values, floats by their largest value.
    """
    if image.mode in PNG_MODES:
        return image
    if image.mode in ("I", "I;16L", "F"):
        sixteen = image.mode == "I;16L"
        image = image.convert("I") if sixteen else image
        largest = float(image.getextrema()[1])  # type: ignore[arg-type]  # one band: (low, high)
        sixteen = sixteen or (image.mode == "I" and largest > 255)
        top = max(largest, 1e-12) if image.mode == "F" else (65535.0 if sixteen else 255.0)
        return image.point(lambda value: value * (255.0 / top)).convert("L")
    return image.convert(ALPHA_MODES.get(image.mode, "RGB"))


def image_file(image: ImageInput, default_name: str = "image") -> FileField:
    """A file field from a path, bytes, a binary file object or a PIL image (sent as lossless PNG, in a mode PNG
    holds: ``png_ready``, turned upright by its EXIF orientation as the service turns a file it is sent: PNG
    carries no orientation, so boxes come back in the frame the photo is seen in)."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        png_ready(ImageOps.exif_transpose(image)).save(buffer, format="PNG")  # a copy: the caller's image is kept
        return f"{default_name}.png", buffer.getvalue()
    if isinstance(image, bytes | bytearray | memoryview):
        return default_name, bytes(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            return path.name, path.read_bytes()
        except OSError as error:  # a ClientError as well as the OSError it was
            raise ImageNotReadable.of(error, str(path)) from error
    if hasattr(image, "read"):
        name = Path(str(getattr(image, "name", default_name))).name
        return name, image.read()
    kind = type(image).__name__
    raise ImageTypeError(f"an image is a path, bytes, a binary file object or a PIL image, not {kind}")


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
    tile: Tile | None = None,
    landmarks: bool = False,
) -> Call[DetectResponse]:
    form = _form(
        conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_size=min_size, tile=tile, landmarks=landmarks or None
    )
    return Call("POST", "/detect", _model(DetectResponse), files=[("image", image_file(image))], data=form)


def classify(
    image: ImageInput,
    detect_faces: bool,
    conf: float | None,
    iou: float | None,
    max_det: int | None,
    imgsz: int | None,
    min_score: float | None = None,
    tile: Tile | None = None,
    min_size: float | None = None,
) -> Call[ClassifyResponse]:
    form = _form(detect_faces=detect_faces, conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_score=min_score)
    form |= _form(tile=tile, min_size=min_size)
    return Call("POST", "/classify", _model(ClassifyResponse), files=[("image", image_file(image))], data=form)


def _stylized(response: httpx.Response) -> Stylized:
    if not response.headers.get("content-type", "").startswith("image/"):
        raise ValueError("a painting is an image")  # an HTML page from a proxy, say: UnexpectedResponse
    model = ModelRef(name=response.headers.get("x-model-name", ""), version=response.headers.get("x-model-version", ""))
    steps = response.headers.get("x-nst-steps")
    return Stylized(response.content, response.headers.get("content-type", ""), model, int(steps) if steps else None)


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
    max_seconds: float | None = None,
    manner: float | None = None,
) -> Call[Stylized]:
    """One content photo; styles as uploaded images or as gallery names, not both (several: interpolated).

    ``UsageError`` (a ValueError), before anything is sent, for both kinds at once: the service refuses the mix (422).
    """
    images, names = _as_list(style), _as_list(style_name)
    if images and names:
        raise UsageError("stylize takes style images or style names, not both")
    files = [("content", image_file(content, "content"))]
    files += [("style", image_file(s, "style")) for s in images]
    form = _form(alpha=alpha, preserve_color=preserve_color, method=method, max_side=max_side, format=format)
    form |= _form(max_seconds=max_seconds, manner=manner)
    form |= {"style_name": names, "style_weights": [str(w) for w in _as_list(style_weights)]}
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
    # A version number, as an int or as its digits, is quoted: the service takes an ETag ("3"), or *, nothing bare.
    if_match = f'"{etag}"' if isinstance(etag, int) or str(etag).isdigit() else etag
    headers = admin | {"If-Match": if_match}
    return Call("PATCH", "/admin/params", _model(ParamsDocument), json=patch, headers=headers)


def activate(admin: dict[str, str], name: str, version: str) -> Call[ActivateResponse]:
    """Not repeatable: a second switch would record the first as ``previous``, and rollback would undo nothing."""
    body = ActivateRequest(version=version).model_dump()
    path = f"/admin/models/{quote(name, safe='')}/activate"
    return Call("POST", path, _model(ActivateResponse), repeatable=False, json=body, headers=admin)


def rollback(admin: dict[str, str], name: str) -> Call[ActivateResponse]:
    path = f"/admin/models/{quote(name, safe='')}/rollback"
    return Call("POST", path, _model(ActivateResponse), repeatable=False, headers=admin)


def _photos(images: ImageInput | Sequence[ImageInput], call: str) -> list[tuple[str, FileField]]:
    """The image fields; ``UsageError`` for none (without a file, httpx would send a form-encoded body: a 415)."""
    many = images if isinstance(images, list | tuple) else [images]
    if not many:
        raise UsageError(f"{call} needs at least one image")
    return [("image", image_file(image, f"image{i}")) for i, image in enumerate(many)]


def _same_person(check: bool) -> dict[str, str]:
    """The form field that turns the service's same-person check off; nothing when it stays on (its default)."""
    return {} if check else {"same_person_check": "false"}


def enrol(
    admin: dict[str, str], name: str, images: ImageInput | Sequence[ImageInput], same_person_check: bool = True
) -> Call[IdentityInfo]:
    """Not repeatable: a second send would enrol the person twice."""
    files, form = _photos(images, "enrol"), {"name": name} | _same_person(same_person_check)
    ok = frozenset({201})
    return Call("POST", "/identities", _model(IdentityInfo), False, files, form, headers=admin, ok_statuses=ok)


def add_faces(
    admin: dict[str, str], identity_id: str, images: ImageInput | Sequence[ImageInput], same_person_check: bool = True
) -> Call[IdentityInfo]:
    path = f"/identities/{quote(identity_id, safe='')}/faces"
    files, form = _photos(images, "add_faces"), _same_person(same_person_check)
    return Call("POST", path, _model(IdentityInfo), repeatable=False, files=files, data=form, headers=admin)


def identities(admin: dict[str, str], limit: int, offset: int) -> Call[IdentityPage]:
    form = {"limit": limit, "offset": offset}
    return Call("GET", f"/identities?{httpx.QueryParams(form)}", _model(IdentityPage), headers=admin)


def identity(admin: dict[str, str], identity_id: str) -> Call[IdentityInfo]:
    return Call("GET", f"/identities/{quote(identity_id, safe='')}", _model(IdentityInfo), headers=admin)


def delete_identity(admin: dict[str, str], identity_id: str) -> Call[None]:
    """Repeatable: deleting twice leaves the same state. Sent again after a 502 or a dropped connection, when the
    first attempt may have been applied, its 404 means the identity is gone, as asked: not an error then."""
    path = f"/identities/{quote(identity_id, safe='')}"
    gone = frozenset({404})
    return Call("DELETE", path, lambda _: None, headers=admin, ok_statuses=frozenset({204}), ok_if_repeated=gone)


def identify(image: ImageInput, top_k: int | None, threshold: float | None) -> Call[IdentifyResponse]:
    form = _form(top_k=top_k, threshold=threshold)
    return Call("POST", "/identify", _model(IdentifyResponse), files=[("image", image_file(image))], data=form)


def verify(image_a: ImageInput, image_b: ImageInput, threshold: float | None) -> Call[VerifyResponse]:
    files = [("image_a", image_file(image_a, "image_a")), ("image_b", image_file(image_b, "image_b"))]
    return Call("POST", "/verify", _model(VerifyResponse), files=files, data=_form(threshold=threshold))
