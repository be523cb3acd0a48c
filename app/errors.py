"""Domain exceptions, and the one place that maps them to HTTP responses."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.request_ids import current_request_id
from models.artifact import ArtifactError

log = logging.getLogger("deepcanvas.errors")


class DeepCanvasError(Exception):
    """Base of every error a client can cause or see; ``status`` is its HTTP status, ``code`` the body's
    machine-readable name of the error (a client tells a busy model from a loading one by it, not by the words)."""

    status = 400
    code = "bad_request"
    retry_after: int | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidImage(DeepCanvasError):
    """Empty, truncated or corrupt image data."""

    code = "invalid_image"
    status = 400


class UnsupportedMediaType(DeepCanvasError):
    """Bytes that are not an image in a supported format."""

    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(DeepCanvasError):
    """An upload over the byte limit, or an image over the pixel limit."""

    code = "payload_too_large"
    status = 413


class InvalidParameter(DeepCanvasError):
    """A well-formed request whose values are out of range or inconsistent."""

    code = "invalid_parameter"
    status = 422


class DifferentPeople(InvalidParameter):
    """Photos to enrol as one person whose faces the embedder places farther apart than its calibrated /verify
    distance: stored together, /identify would name a stranger as that person (``identities.same_person``)."""

    code = "different_people"


class NotFound(DeepCanvasError):
    """A named thing (style, model) that does not exist."""

    code = "not_found"
    status = 404


class ActivationFailed(DeepCanvasError):
    """A model version could not be loaded; the serving version stays."""

    code = "activation_failed"
    status = 422


class ActivationNotRecorded(DeepCanvasError):
    """A version loaded, but the store would not take its record (``active.json``), so it was not swapped in.

    The other replicas follow that record: serving the version here alone would split the service for good.
    503 while the store is away (retry later), like the store's other errors; ``ActivationConflict`` otherwise.
    """

    code = "activation_not_recorded"
    status = 503
    retry_after = 5


class ActivationConflict(DeepCanvasError):
    """Like ``ActivationNotRecorded``, because the record kept changing under every conditional write (other
    replicas' activations): retry."""

    code = "activation_conflict"
    status = 409


class Unauthorized(DeepCanvasError):
    """No credentials where the route needs them (an admin token, an API key)."""

    code = "unauthorized"
    status = 401


class Forbidden(DeepCanvasError):
    """Credentials that this service does not accept."""

    code = "forbidden"
    status = 403


class ShuttingDown(DeepCanvasError):
    """The process received SIGTERM and finishes only the requests it already has."""

    code = "shutting_down"
    status = 503
    retry_after = 1


class ModelNotReady(DeepCanvasError):
    """The model is still loading or failed to load."""

    code = "model_not_ready"
    status = 503
    retry_after = 5


class Overloaded(DeepCanvasError):
    """The model's waiting queue is full."""

    code = "overloaded"
    status = 503
    retry_after = 1


class DatabaseUnavailable(DeepCanvasError):
    """The identity database cannot be reached; reads that need it wait, /identify serves from memory."""

    code = "database_unavailable"
    status = 503
    retry_after = 5


class WriteOutcomeUnknown(DeepCanvasError):
    """A change to the identity database (an enrolment, added faces, a deletion) that did not answer within the
    deadline and may still be saved (the worker thread cannot be stopped, and a database that answers late commits
    it anyway), or whose COMMIT failed (a connection lost then: the database may have saved it first). Not a 503
    with Retry-After, which invited a client to send it again (an enrolment saved twice); 504 without Retry-After,
    and the detail says what to check before sending it again."""

    code = "write_outcome_unknown"
    status = 504


class IncompatibleSchema(DatabaseUnavailable):
    """The identity database's schema is at a revision this release does not know and lacks what it needs (an
    image rolled back past a migration that changed the schema, or another application's Alembic table): the
    identity routes refuse with the reason until a release that knows the schema is deployed; nothing is changed."""

    code = "incompatible_schema"
    retry_after = 60


# The ``code`` of the framework's own errors (Starlette's HTTPException), which no DeepCanvasError raises.
HTTP_CODES = {
    400: DeepCanvasError.code,
    401: Unauthorized.code,
    403: Forbidden.code,
    404: NotFound.code,
    405: "method_not_allowed",
    408: "request_timeout",
    413: PayloadTooLarge.code,
    415: UnsupportedMediaType.code,
    422: InvalidParameter.code,
}


def error_response(
    status: int, code: str, detail: str, retry_after: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Every error's body: ``{"detail": <for people>, "code": <for programs>}``, and Retry-After when given."""
    headers = dict(headers or {}) | ({"Retry-After": str(retry_after)} if retry_after is not None else {})
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers or None)


def refusal(error: DeepCanvasError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The answer to ``error``: its status, code, detail and Retry-After, plus ``headers``; for the route handlers
    and for the middleware that refuses before a route runs (credentials, body limit, drain)."""
    return error_response(error.status, error.code, error.detail, error.retry_after, headers)


def describe_validation_error(error: RequestValidationError) -> str:
    """One readable sentence per invalid field: ``conf: Input should be less than or equal to 1``."""
    parts = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            parts.append("request body: not valid JSON")
            continue
        location = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = ".".join(location) or "request"
        message = str(item.get("msg", "invalid value"))
        if "Expected UploadFile" in message:  # a text field where a file belongs: "received: <class 'str'>"
            message = "must be a file upload (multipart/form-data)"
        parts.append(f"{where}: {message}")
    return "; ".join(parts) or "invalid request"


def unparsed_body(exc: StarletteHTTPException) -> JSONResponse | None:
    """FastAPI's 400 "There was an error parsing the body" for a JSON body its parser raised on without a
    ``JSONDecodeError`` (the cause is chained): say what was wrong. None for every other HTTP error."""
    cause = exc.__cause__
    if exc.status_code != 400 or not isinstance(cause, ValueError):
        return None
    if isinstance(cause, UnicodeDecodeError):
        return error_response(400, DeepCanvasError.code, "request body: not valid JSON (its bytes are not UTF-8)")
    if "integer string conversion" in str(cause):  # Python's guard against quadratic int parsing
        digits = sys.get_int_max_str_digits()
        detail = f"request body: a number with more than {digits} digits, beyond every parameter's range"
        return error_response(422, InvalidParameter.code, detail)
    return None


def document_errors_as_strings(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents 422 bodies as a list of objects; ours are ``{"detail": "...", "code": "..."}`` like every
    error."""
    components = schema.get("components", {}).get("schemas", {})
    if "HTTPValidationError" in components:
        components["HTTPValidationError"] = {
            "title": "HTTPValidationError",
            "type": "object",
            "properties": {
                "detail": {"type": "string", "title": "Detail", "examples": ["conf: Input should be ≤ 1"]},
                "code": {"type": "string", "title": "Code", "examples": ["invalid_parameter"]},
            },
            "required": ["detail", "code"],
        }
        components.pop("ValidationError", None)
    return schema


def internal_error(method: str, path: str, error: BaseException) -> JSONResponse:
    """The 500 for an error no handler took, its traceback logged once (the detail says nothing of it)."""
    log.error("unhandled error on %s %s", method, path, exc_info=error)
    return error_response(500, "internal_error", "internal error")


PROBED_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")  # what the routes declare; HEAD follows GET


def allowed_methods(request: Request) -> str:
    """Every method the request's path is served with, for a 405's Allow (RFC 9110 §15.5.6 lists them all):
    Starlette's names those of the first route that matched the path, and ``/identities`` serves GET and POST
    from two routes. Each method is asked of the router as a request for it would be (``BaseRoute.matches``)."""
    routes = request.app.router.routes

    def served(method: str) -> bool:
        probe = {**request.scope, "method": method}
        return any(route.matches(probe)[0] is Match.FULL for route in routes)

    methods = {method for method in PROBED_METHODS if served(method)}
    if "GET" in methods:
        methods.add("HEAD")  # app.head_requests serves it wherever GET is
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DeepCanvasError)
        return refusal(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, InvalidParameter.code, describe_validation_error(exc))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if (unparsed := unparsed_body(exc)) is not None:
            return unparsed
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        # The model store unreachable, or a document in it malformed (the admin routes read it): not the
        # client's fault, and not a bug of ours; routes that can blame a request (activate) answer it themselves.
        log.warning("model store error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(503, "store_unavailable", f"the model store: {exc}", 5)

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # An error the telemetry middleware could not answer (one in a layer outside it): Starlette runs this
        # handler outside every middleware of ours, so the request's id (still set for this task, see
        # TelemetryMiddleware) goes on it here.
        answer = internal_error(request.method, request.url.path, exc)
        if (request_id := current_request_id.get()) is not None:
            answer.headers["X-Request-ID"] = request_id
        return answer

    app.add_exception_handler(DeepCanvasError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ArtifactError, store_error)
    app.add_exception_handler(Exception, unexpected_error)
