"""Form checks that FastAPI does not make, as dependencies of every route.

Fields that take one value: sent more than once, the request is refused. FastAPI keeps the last value of a
repeated single-valued field and drops the others without a word: two photos sent as ``image`` to ``/detect``
got one answer, for the second. ``one_value_each`` answers 422 naming the field instead. Fields declared as
lists (``style``, ``style_name``, enrolment's ``image``) repeat as documented.

Routes that take a photo: a JSON, raw image or URL-encoded body cannot carry one, and FastAPI answered
"image: Field required" as if the photo had been forgotten. ``uploads_need_multipart`` answers 415 saying what
to send.
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from starlette.datastructures import UploadFile

from app.errors import InvalidParameter, UnsupportedMediaType

MULTIPART = "multipart/form-data"
FORM_TYPES = (MULTIPART, "application/x-www-form-urlencoded")
MANY = (list, tuple, set, frozenset)


def takes_many(annotation: Any) -> bool:
    """Whether a field's type holds several values (``list[...]``, also inside ``| None``)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(takes_many(argument) for argument in get_args(annotation))
    return origin in MANY


def takes_files(annotation: Any) -> bool:
    """Whether a field's type is an uploaded file (``UploadFile``, also in a list or inside ``| None``)."""
    if isinstance(annotation, type):
        return issubclass(annotation, UploadFile)
    return any(takes_files(argument) for argument in get_args(annotation))


_single: dict[Callable[..., Any], frozenset[str]] = {}  # by endpoint function (routes are not hashable)
_uploads: dict[Callable[..., Any], tuple[str, ...]] = {}


def single_valued(route: Any) -> frozenset[str]:
    """The form fields of ``route`` (an ``APIRoute``) that take one value each, by the name a client sends."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return frozenset()
    if (found := _single.get(route.endpoint)) is None:
        fields = dependant.body_params
        found = _single[route.endpoint] = frozenset(
            field.alias for field in fields if not takes_many(field.field_info.annotation)
        )
    return found


async def one_value_each(request: Request) -> None:
    """422 when a single-valued form field of this route came more than once."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPES):
        return
    single = single_valued(request.scope.get("route"))
    if not single:
        return
    counts = Counter(name for name, _ in (await request.form()).multi_items())  # the form FastAPI already parsed
    repeated = sorted(name for name in single if counts[name] > 1)
    if repeated:
        name = repeated[0]
        raise InvalidParameter(f"{name}: sent {counts[name]} times; it takes one value (one request per photo)")


def required_uploads(route: Any) -> tuple[str, ...]:
    """The file fields that ``route`` (an ``APIRoute``) cannot do without, by the name a client sends."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return ()
    if (found := _uploads.get(route.endpoint)) is None:
        fields = dependant.body_params
        found = _uploads[route.endpoint] = tuple(
            field.alias
            for field in fields
            if field.field_info.is_required() and takes_files(field.field_info.annotation)
        )
    return found


async def uploads_need_multipart(request: Request) -> None:
    """415 when a route that takes a photo gets a body that cannot carry one (JSON, raw bytes, URL-encoded)."""
    uploads = required_uploads(request.scope.get("route"))
    if uploads and not request.headers.get("content-type", "").lower().startswith(MULTIPART):
        raise UnsupportedMediaType(f"send {MULTIPART} with the photo in the {uploads[0]} field")


async def form_checks(request: Request) -> None:
    """Both checks as one dependency of every route: each dependency FastAPI solves costs every request."""
    await uploads_need_multipart(request)
    await one_value_each(request)
