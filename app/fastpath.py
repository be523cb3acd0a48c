"""A lean path for the photo routes' everyday request, in front of FastAPI's general one.

A one-photo ``/classify`` spends about 2.3 ms in its network and decode, and around them FastAPI's general
machinery: routing, Starlette's multipart parser (0.30-0.37 ms for one photo and one field) and the dependency
solver, which inspects each of the route's nine form fields' annotations again on every request (0.47-0.52 ms;
``docs/benchmarks-history.md``). A serving framework has to be that general; a service that knows its routes
need not be.

``FormFastPath`` sits innermost among the service's middlewares (telemetry, the drain, API keys, the body limit
and the disconnect watch all apply as before). For the routes it knows (``FAST_FORM_PATHS``) it reads the body
and serves a request that is plainly well formed itself, with the route's own pieces:

- the body is a complete ``multipart/form-data`` body whose parts have simple quoted names (``parse_form``),
  each of the route's fields at most once, the photo a named, non-empty file;
- each field is validated by the route's own FastAPI field (``ModelField.validate``: the same types, bounds and
  coercions), a missing one takes the route's default;
- the endpoint's dependencies are its plain ``async`` ones on the request (``deps``), called as FastAPI would;
- the endpoint itself runs, its answer validated and serialized by the route's response field, as FastAPI's
  own fast serializer does (``serialize_json``), and an exception it raises goes to the app's handler for it.

Anything else (another content type or a charset, a repeated, unknown, empty or malformed field, a header
python-multipart would refuse, a body cut short, over 8 MiB or in over 4096 messages, a disconnect or a
body-limit refusal while reading, dependency overrides on the app) goes to FastAPI with the body replayed as
received, so every refusal and its wording stays FastAPI's and the route's. A route whose shape the
path cannot serve this way (a dependency that is not a plain ``async`` function of the request, a custom response
class, ...) is never taken: ``compile_route`` returns None for it, and the tests hold both photo routes to it.
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request, parse_options_header
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import forms
from app.forms import FormRequest, form_checks

log = logging.getLogger(__name__)

FAST_FORM_PATHS = frozenset({"/classify", "/detect"})
MULTIPART = forms.MULTIPART.encode()  # the content type form_checks asks photo routes for
# What the lean path takes at most; anything larger or longer is no everyday request, and FastAPI reads it.
MAX_FIELD_BYTES = 1000  # a scalar field's value
MAX_BODY_BYTES = 8 * 1024 * 1024  # the whole body, held in memory (Starlette spools a photo over 1 MiB to disk)
MAX_MESSAGES = 4096  # body messages (a trickled body): each one is kept until the request is served
MAX_BOUNDARY = 70  # RFC 2046's longest boundary (python-multipart refuses over 256)
MAX_HEADERS = 8  # per part, python-multipart's own limit
MAX_HEADER_LINE = 1024  # python-multipart refuses over 4224
# A header line: an RFC 9110 token, a colon, and visible ASCII, spaces and tabs (no CR, LF, NUL or other controls).
# Possessive: nothing is tried twice (a lazy value between two runs of blanks backtracked cubically).
HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]++):[ \t]*+([\x20-\x7e\t]*+)")
# One part's Content-Disposition: form-data with a quoted name and, for a file, a quoted filename; nothing else,
# and only spaces and tabs between them (python-multipart strips no other whitespace).
QUOTED = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]*+)"'  # visible ASCII and spaces, no quote or backslash
DISPOSITION = re.compile(rb"form-data(?:[ \t]*+;[ \t]*+(name|filename)=" + QUOTED + rb")++[ \t]*+", re.I)
PARAMETER = re.compile(rb'[ \t]*;[ \t]*(name|filename)="([^"]*)"', re.I)
Resolver = Callable[[Request, dict[Any, Any]], Awaitable[Any]]


class InMemoryFile(io.BytesIO):
    """A photo's bytes as an upload's file: Starlette's ``UploadFile`` reads one not rolled to disk in place,
    without the hop to a worker thread it takes for a file on disk."""

    _rolled = False


@dataclass(frozen=True)
class Part:
    filename: str | None
    headers: list[tuple[bytes, bytes]]
    data: bytes


def parse_form(body: bytes, boundary: bytes, most_parts: int) -> dict[str, Part] | None:
    """The parts of a plainly well-formed multipart body by name, or None for anything else (FastAPI reads it).

    Well formed: the body opens with the first delimiter, ends with the closing one (and at most a CRLF),
    holds at most ``most_parts`` parts, each with at most ``MAX_HEADERS`` plain header lines, a blank line, and a
    ``Content-Disposition: form-data`` with simple quoted parameters; no name twice, and no delimiter inside a
    part (a delimiter line with transport padding).
    """
    delimiter = b"--" + boundary
    if not 0 < len(boundary) <= MAX_BOUNDARY or not body.startswith(delimiter + b"\r\n"):
        return None
    if body.count(b"\r\n" + delimiter) > most_parts:  # counted before anything is split: a body of many parts
        return None
    closing = body.find(b"\r\n" + delimiter + b"--")
    if closing < 0 or body[closing + len(delimiter) + 4 :] not in (b"", b"\r\n"):
        return None
    parts: dict[str, Part] = {}
    for chunk in body[len(delimiter) + 2 : closing].split(b"\r\n" + delimiter + b"\r\n"):
        if b"\r\n" + delimiter in chunk:
            return None
        head, blank, data = chunk.partition(b"\r\n\r\n")
        if not blank:
            return None
        lines = head.split(b"\r\n")
        if len(lines) > MAX_HEADERS:
            return None
        headers = []
        for line in lines:
            header = HEADER.fullmatch(line) if len(line) <= MAX_HEADER_LINE else None
            if header is None:
                return None
            headers.append((header[1].lower(), header[2].rstrip(b" \t")))
        part = _part(headers, data)
        if part is None or part[0] in parts:
            return None
        parts[part[0]] = part[1]
    return parts


def _part(headers: list[tuple[bytes, bytes]], data: bytes) -> tuple[str, Part] | None:
    dispositions = [value for name, value in headers if name == b"content-disposition"]
    if len(dispositions) != 1 or not DISPOSITION.fullmatch(dispositions[0]):
        return None
    found: dict[bytes, str] = {}
    for key, value in PARAMETER.findall(dispositions[0]):
        key = key.lower()
        if key in found:
            return None
        found[key] = value.decode("ascii")
    name = found.get(b"name")
    if not name:
        return None
    return name, Part(found.get(b"filename"), headers, data)


@dataclass(frozen=True)
class FastRoute:
    """What the lean path needs of one route: its fields, its dependencies, its answer."""

    route: APIRoute  # as FastAPI puts it in the scope
    served: Any  # the route as FastAPI serves it (``RouteContext``): endpoint, response field and settings
    fields: dict[str, Any]  # by the name a client sends: FastAPI's ModelField
    files: frozenset[str]  # the fields that take an uploaded file
    dependencies: tuple[tuple[str, Resolver], ...]  # the endpoint's parameter, and how to get it

    def arguments(self, parts: dict[str, Part]) -> dict[str, Any] | None:
        """The endpoint's form arguments, validated by the route's own fields; None when FastAPI should read it."""
        if not parts.keys() <= self.fields.keys():
            return None
        values: dict[str, Any] = {}
        for alias, field in self.fields.items():
            part = parts.get(alias)
            is_file = alias in self.files
            if part is None:  # as FastAPI: the default, validated only where the field asks for it
                if field.field_info.is_required():
                    return None
                values[field.name] = copy.deepcopy(field.default)
                if field.field_info.validate_default:
                    values[field.name], errors = field.validate(values[field.name], values, loc=("body", alias))
                    if errors:
                        return None
                continue
            if is_file != (part.filename is not None) or (is_file and not (part.filename and part.data)):
                return None
            raw: Any
            if is_file:
                raw = UploadFile(
                    InMemoryFile(part.data),
                    size=len(part.data),
                    filename=part.filename,
                    headers=Headers(raw=part.headers),
                )
            elif not part.data or len(part.data) > MAX_FIELD_BYTES or not part.data.isascii():
                return None
            else:
                raw = part.data.decode("ascii")
            value, errors = field.validate(raw, values, loc=("body", alias))
            if errors:
                return None
            values[field.name] = value
        return values

    async def respond(self, request: Request, values: dict[str, Any]) -> Response:
        cache: dict[Any, Any] = {}
        for name, resolve in self.dependencies:
            values[name] = await resolve(request, cache)
        route = self.served
        answer = await route.endpoint(**values)
        if isinstance(answer, Response):
            return answer
        field = route.response_field
        value, errors = field.validate(answer, {}, loc=("response",))
        if errors:  # as FastAPI's own path: a 500, the answer not sent
            raise ResponseValidationError(errors=errors, body=answer)
        content = field.serialize_json(
            value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
        )
        return Response(content=content, media_type="application/json", status_code=200)


def _resolver(dependant: Any) -> Resolver | None:
    """How to get a plain ``async`` dependency of the request alone (and of other such dependencies), cached per
    request as FastAPI caches it; None for any other kind of dependency."""
    call = dependant.call
    other_inputs = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
        dependant.own_oauth_scopes,
    )
    if not inspect.iscoroutinefunction(call) or any(other_inputs) or not dependant.use_cache:
        return None
    subs = [(sub.name, _resolver(sub)) for sub in dependant.dependencies]
    if any(resolve is None for _, resolve in subs):
        return None
    request_name = dependant.request_param_name

    async def resolve(request: Request, cache: dict[Any, Any]) -> Any:
        if call in cache:
            return cache[call]
        arguments = {name: await sub(request, cache) for name, sub in subs if sub is not None}
        if request_name:
            arguments[request_name] = request
        cache[call] = value = await call(**arguments)
        return value

    return resolve


def compile_route(app: Any, path: str) -> FastRoute | None:
    """The lean path for ``path``'s POST route, or None when the route has a shape it does not serve.

    The route is read as FastAPI serves it: its effective context (``RouteContext``), where the dependencies,
    response class and body limit given at ``include_router`` join the route's own.
    """
    served = _first_match(app, path)  # its attributes are the effective route's
    route = served.original_route if served is not None and served.path == path else None
    if not isinstance(route, APIRoute) or _form_limits_anywhere(app):
        return None
    dependant = served.dependant
    declared = {d.dependency for d in [*app.router.dependencies, *served.dependencies]}
    if (
        dependant is None
        or not declared <= {form_checks}  # its two checks are among the lean path's conditions
        or not isinstance(served.response_class, DefaultPlaceholder)
        or served.response_field is None
        or getattr(served, "stream_item_field", None) is not None
        or getattr(served, "max_body_size", None) is not None
        or (served.status_code or 200) != 200
        or not inspect.iscoroutinefunction(served.endpoint)
        or any((dependant.path_params, dependant.query_params, dependant.header_params, dependant.cookie_params))
        or dependant.request_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
    ):
        return None
    fields = {}
    for field in dependant.body_params:
        info = field.field_info
        if not isinstance(info, params.Form) or info.validation_alias or field.alias != field.name:
            return None
        fields[field.alias] = field
    files = frozenset(alias for alias, field in fields.items() if isinstance(field.field_info, params.File))
    if not files:
        return None
    dependencies = []
    for sub in dependant.dependencies:
        if sub.call is form_checks and sub.name is None:
            continue
        resolve = _resolver(sub)
        if resolve is None or sub.name is None:
            return None
        dependencies.append((sub.name, resolve))
    return FastRoute(route, served, fields, files, tuple(dependencies))


def _first_match(app: Any, path: str) -> Any:
    """The route FastAPI serves a POST to ``path`` with: the first whose path matches and that takes a POST."""
    for context in iter_route_contexts(app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(path) and (context.methods is None or "POST" in context.methods):
            return context
    return None


def _form_limits_anywhere(app: Any) -> bool:
    """Whether the app, a router or a route sets FastAPI's form limits (parts, fields, files), which the lean
    parser does not apply: a route under any is left to FastAPI."""
    pending: list[Any] = [app.router]
    while pending:
        item = pending.pop()
        for owner in (item, getattr(item, "include_context", None), getattr(item, "original_router", None)):
            if getattr(owner, "form_limits", None):
                return True
        pending += getattr(item, "routes", None) or []
        if (router := getattr(item, "original_router", None)) is not None:
            pending += router.routes
    return False


def _boundary(scope: Scope) -> bytes | None:
    """The boundary of a ``multipart/form-data`` body that names nothing else (a charset: Starlette decodes the
    names and values with it), else None."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            if not value.lower().startswith(MULTIPART):  # as form_checks reads it
                return None
            kind, options = parse_options_header(value)
            return options.get(b"boundary") if kind == MULTIPART and options.keys() == {b"boundary"} else None
    return None


class FormFastPath:
    """The lean path for ``paths`` (module docstring); every other request goes to ``app`` untouched."""

    def __init__(self, app: ASGIApp, paths: frozenset[str] = FAST_FORM_PATHS) -> None:
        self.app = app
        self.paths = paths
        self.routes: dict[str, FastRoute | None] = {}  # compiled at a path's first request, as FastAPI's stack
        self.handlers: dict[Any, Callable[..., Any]] | None = None

    def _route(self, scope: Scope) -> FastRoute | None:
        path = scope["path"]
        if self.handlers is None:  # as Starlette's exception middleware: the handlers when the stack was built
            self.handlers = dict(getattr(scope["app"], "exception_handlers", {}))
        if path not in self.routes:
            self.routes[path] = compiled = compile_route(scope["app"], path)
            if compiled is None:
                log.warning("%s: the route's shape is not one the lean form path serves; FastAPI serves it", path)
        return self.routes[path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.paths
            or scope.get("query_string")  # FastAPI's form_checks read it (a form field sent in the query is a 422)
            or scope.get("root_path")
            or getattr(scope.get("app"), "dependency_overrides", None)
        ):
            await self.app(scope, receive, send)
            return
        fast = self._route(scope)
        boundary = _boundary(scope) if fast is not None else None
        if fast is None or boundary is None or _declared_length(scope) > MAX_BODY_BYTES:
            await self.app(scope, receive, send)
            return
        received, complete, failure = await _read_body(receive)
        values = None
        if complete:
            parts = parse_form(b"".join(m.get("body", b"") for m in received), boundary, len(fast.fields))
            values = fast.arguments(parts) if parts is not None else None
        if values is None:
            await self.app(scope, _replay(received, failure, receive), send)
            return
        request = FormRequest(scope, receive)
        scope["route"], scope["endpoint"], scope["path_params"] = fast.route, fast.served.endpoint, {}
        answer: Response | None
        try:
            answer = await fast.respond(request, values)
        except Exception as error:
            handler = _handler(self.handlers or {}, error)
            if handler is None:  # as from FastAPI: to the service's own answer for an unexpected error
                raise
            if _is_async(handler):
                answer = await handler(request, error)
            else:
                answer = await run_in_threadpool(handler, request, error)
        if answer is not None:  # as Starlette: a handler that returns nothing sends nothing
            await answer(scope, receive, send)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MAX_BODY_BYTES + 1
    return 0


async def _read_body(receive: Receive) -> tuple[list[Message], bool, Exception | None]:
    """The body's messages as received, whether they are the whole body within the lean path's bounds, and the
    error ``receive`` raised (the body limit's 413 or 408). Reading stops at the bounds: FastAPI reads the rest."""
    received: list[Message] = []
    size = 0
    try:
        while len(received) < MAX_MESSAGES and size <= MAX_BODY_BYTES:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return received, False, None
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return received, size <= MAX_BODY_BYTES, None
    except Exception as error:  # FastAPI meets it where it did
        return received, False, error
    return received, False, None


def _handler(handlers: dict[Any, Callable[..., Any]], error: Exception) -> Callable[..., Any] | None:
    """The app's handler for ``error``, looked up as Starlette's exception middleware looks it up: handlers for
    500 and ``Exception`` are not among its handlers (Starlette gives them to its server-error middleware, which
    the service's telemetry answers before: ``TelemetryMiddleware``)."""
    if isinstance(error, HTTPException) and error.status_code != 500 and error.status_code in handlers:
        return handlers[error.status_code]
    for kind in type(error).__mro__:
        if kind is not Exception and kind in handlers:
            return handlers[kind]
    return None


def _is_async(call: Any) -> bool:
    """Whether calling ``call`` gives a coroutine, as Starlette reads a handler (partials, async ``__call__``)."""
    while isinstance(call, functools.partial):
        call = call.func
    return inspect.iscoroutinefunction(call) or (callable(call) and inspect.iscoroutinefunction(type(call).__call__))


def _replay(received: list[Message], failure: Exception | None, receive: Receive) -> Receive:
    """``receive`` as FastAPI would have met it: the messages already read, then the error it raised, if any."""
    pending = iter(received)

    async def replayed() -> Message:
        message = next(pending, None)
        if message is not None:
            return message
        if failure is not None:
            raise failure
        return await receive()

    return replayed
