"""Form checks that FastAPI does not make, as dependencies of every route.

Fields that take one value: sent more than once, the request is refused. FastAPI keeps the last value of a
repeated single-valued field and drops the others without a word: two photos sent as ``image`` to ``/detect``
got one answer, for the second. ``one_value_each`` answers 422 naming the field instead. Fields declared as
lists (``style``, ``style_name``, enrolment's ``image``) repeat as documented. Query parameters likewise
(``GET /identities?limit=1&limit=500`` listed 500).

Routes that take a photo: a JSON, raw image or URL-encoded body cannot carry one, and FastAPI answered
"image: Field required" as if the photo had been forgotten. ``uploads_need_multipart`` answers 415 saying what
to send.

A multipart body that ends before its closing boundary (a client or proxy that cut it short, with a
Content-Length to match) was read as far as it went: the part cut in the middle vanished, and an enrolment of
three photos stored two. On the routes of ``FormRoute`` such a body is refused (400) instead.
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, Union, get_args, get_origin

from fastapi import HTTPException, Request, Response, params
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import parse_options_header

from app.errors import InvalidParameter, UnsupportedMediaType

MULTIPART = "multipart/form-data"
FORM_TYPES = (MULTIPART, "application/x-www-form-urlencoded")
MANY = (list, tuple, set, frozenset)
DEFAULT_MAX_PART_SIZE = 1024 * 1024  # starlette's own defaults; FastAPI passes the route's limits


class WholeMultiPartParser(MultiPartParser):
    """Starlette's parser, refusing a body that ends before its closing boundary (python-multipart reports that
    boundary as its end and otherwise says nothing: the part cut short is dropped, the parts before it kept)."""

    _began = False  # a part began: an empty body is no form, not one cut short
    _ended = False

    def on_part_begin(self) -> None:
        self._began = True
        super().on_part_begin()

    def on_end(self) -> None:
        self._ended = True
        super().on_end()

    async def parse(self) -> FormData:
        form = await super().parse()
        if self._began and not self._ended:
            for file in self._files_to_close_on_error:  # every part's, the one cut short too (it may be on disk)
                file.close()
            raise MultiPartException("the multipart body ends before its closing boundary: it was cut short")
        return form


class FormRequest(Request):
    """A request whose multipart form is read by ``parser`` (``WholeMultiPartParser``); other bodies as starlette
    reads them."""

    parser: ClassVar[type[MultiPartParser]] = WholeMultiPartParser

    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
    ) -> FormData:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if self._form is None and content_type == MULTIPART.encode():
            try:
                async with aclosing(self.stream()) as stream:
                    parser = self.parser(
                        self.headers, stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
                    )
                    self._form = await parser.parse()
            except MultiPartException as error:  # as starlette answers it: a malformed body is a 400
                raise HTTPException(status_code=400, detail=error.message) from error
        return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class FormRoute(APIRoute):
    """A route whose handler and dependencies see a ``request_class`` request (``FormRequest``)."""

    request_class: ClassVar[type[FormRequest]] = FormRequest

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        request_class = self.request_class

        async def form_handler(request: Request) -> Response:
            return await handler(request_class(request.scope, request.receive))

        return form_handler


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
    single_query: frozenset[str] = frozenset()  # single-valued query parameters, by the name a client sends
    guarded: bool = False  # it depends on a ``guard``, which checks the form itself once the caller has passed
    body: frozenset[str] = frozenset()  # every form field, by the name a client sends
    query: frozenset[str] = frozenset()  # every query parameter, its own or its dependencies'


_fields: dict[Callable[..., Any], FormFields] = {}  # by endpoint function (routes are not hashable)
_guards: set[Callable[..., Any]] = set()

GuardT = TypeVar("GuardT", bound=Callable[..., Any])


def guard(dependency: GuardT) -> GuardT:
    """Mark an authentication dependency: on a route that depends on it, ``form_checks`` leaves the form alone and
    the guard calls ``check_form`` once the caller has passed it. A caller without the token learns that first
    (401, 403, or 404 where the routes are off), not what is wrong with a body the route would never read."""
    _guards.add(dependency)
    return dependency


def form_fields(route: Any) -> FormFields:
    """The form fields of ``route`` (an ``APIRoute``), read once from its declared body parameters."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return FormFields()
    if (found := _fields.get(route.endpoint)) is None:
        infos = [(field.alias, field.field_info) for field in dependant.body_params]
        queries = [(field.alias, field.field_info) for field in _query_params(dependant)]
        found = _fields[route.endpoint] = FormFields(
            single=frozenset(alias for alias, info in infos if not takes_many(info.annotation)),
            uploads=tuple(alias for alias, info in infos if info.is_required() and takes_files(info.annotation)),
            single_query=frozenset(alias for alias, info in queries if not takes_many(info.annotation)),
            guarded=_guarded(dependant),
            body=frozenset(alias for alias, info in infos if isinstance(info, params.Form)),  # File is a Form
            query=frozenset(alias for alias, _ in queries),
        )
    return found


def _guarded(dependant: Any) -> bool:
    return any(sub.call in _guards or _guarded(sub) for sub in dependant.dependencies)


def _query_params(dependant: Any) -> list[Any]:
    """The query parameters of a route's dependant and of every dependency it has (FastAPI's ``ModelField``s)."""
    return [*dependant.query_params, *(field for sub in dependant.dependencies for field in _query_params(sub))]


async def one_value_each(request: Request) -> None:
    """422 when a single-valued query parameter or form field of this route came more than once."""
    fields = form_fields(request.scope.get("route"))
    if fields.single_query and request.url.query:
        sent = Counter(name for name, _ in request.query_params.multi_items())
        if repeated_query := sorted(name for name in fields.single_query if sent[name] > 1):
            name = repeated_query[0]
            raise InvalidParameter(f"{name}: sent {sent[name]} times in the query; it takes one value")
    if not request.headers.get("content-type", "").lower().startswith(FORM_TYPES):
        return
    single = fields.single
    if not single:
        return
    form = await request.form()  # the form FastAPI already parsed
    counts = Counter(name for name, _ in form.multi_items())
    repeated = sorted(name for name in single if counts[name] > 1)
    if repeated:
        name = repeated[0]
        photos = " (one request per photo)" if any(isinstance(v, UploadFile) for v in form.getlist(name)) else ""
        raise InvalidParameter(f"{name}: sent {counts[name]} times; it takes one value{photos}")


async def uploads_need_multipart(request: Request) -> None:
    """415 when a route that takes a photo gets a body that cannot carry one (JSON, raw bytes, URL-encoded)."""
    uploads = form_fields(request.scope.get("route")).uploads
    if uploads and not request.headers.get("content-type", "").lower().startswith(MULTIPART):
        raise UnsupportedMediaType(f"send {MULTIPART} with the photo in the {uploads[0]} field")


async def form_checks(request: Request) -> None:
    """Both checks as one dependency of every route: each dependency FastAPI solves costs every request. A guarded
    route's guard makes them itself, after the caller's credential (``guard``)."""
    if not form_fields(request.scope.get("route")).guarded:
        await check_form(request)


async def check_form(request: Request) -> None:
    """415 for a body that cannot carry the route's photo; 422 for a single-valued field sent twice, or a form
    field sent in the query."""
    await uploads_need_multipart(request)
    await one_value_each(request)
    fields_in_the_body(request)


def fields_in_the_body(request: Request) -> None:
    """422 for a form field of this route sent in the query string: FastAPI reads form fields from the body only,
    so ``/detect?conf=0.9`` was served at the default conf, with a 200 that said nothing of it."""
    if not request.url.query:
        return
    fields = form_fields(request.scope.get("route"))
    sent = {name for name, _ in request.query_params.multi_items()}
    if misplaced := sorted(sent & fields.body - fields.query):
        names = ", ".join(misplaced)
        raise InvalidParameter(f"{names}: a form field, sent in the query; send it in the multipart/form-data body")
