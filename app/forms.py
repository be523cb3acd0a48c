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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FormFields:
    """What the checks need of a route's form: its single-valued fields and the file fields it requires."""

    single: frozenset[str] = frozenset()  # by the name a client sends
    uploads: tuple[str, ...] = ()


_fields: dict[Callable[..., Any], FormFields] = {}  # by endpoint function (routes are not hashable)


def form_fields(route: Any) -> FormFields:
    """The form fields of ``route`` (an ``APIRoute``), read once from its declared body parameters."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return FormFields()
    if (found := _fields.get(route.endpoint)) is None:
        infos = [(field.alias, field.field_info) for field in dependant.body_params]
        found = _fields[route.endpoint] = FormFields(
            single=frozenset(alias for alias, info in infos if not takes_many(info.annotation)),
            uploads=tuple(alias for alias, info in infos if info.is_required() and takes_files(info.annotation)),
        )
    return found


async def one_value_each(request: Request) -> None:
    """422 when a single-valued form field of this route came more than once."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPES):
        return
    single = form_fields(request.scope.get("route")).single
    if not single:
        return
    counts = Counter(name for name, _ in (await request.form()).multi_items())  # the form FastAPI already parsed
    repeated = sorted(name for name in single if counts[name] > 1)
    if repeated:
        name = repeated[0]
        raise InvalidParameter(f"{name}: sent {counts[name]} times; it takes one value (one request per photo)")


async def uploads_need_multipart(request: Request) -> None:
    """415 when a route that takes a photo gets a body that cannot carry one (JSON, raw bytes, URL-encoded)."""
    uploads = form_fields(request.scope.get("route")).uploads
    if uploads and not request.headers.get("content-type", "").lower().startswith(MULTIPART):
        raise UnsupportedMediaType(f"send {MULTIPART} with the photo in the {uploads[0]} field")


async def form_checks(request: Request) -> None:
    """Both checks as one dependency of every route: each dependency FastAPI solves costs every request."""
    await uploads_need_multipart(request)
    await one_value_each(request)
