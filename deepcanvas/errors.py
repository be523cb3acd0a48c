"""What the client raises: the server's status and ``detail`` as a typed exception, a transport failure, or a call
refused before anything is sent. Every one is a ``ClientError``, so ``except ClientError`` catches them all; those
refused for how the client was used are ``ValueError``, ``TypeError``, ``OSError``, ``RuntimeError`` or
``TimeoutError`` as well, as they were before they were ``ClientError`` s."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

DETAIL_CHARACTERS = 300  # of a body that is not the service's JSON (a proxy's error page): enough to say what it is


class ClientError(Exception):
    """Base of everything the DeepCanvas client raises."""


class UsageError(ClientError, ValueError):
    """A call refused before anything is sent: an admin call without the admin token, styles given both as images
    and as names, an enrolment without photos, an API key or token that no HTTP header can carry."""


class ImageTypeError(ClientError, TypeError):
    """An image that is not a path, bytes, a binary file object or a PIL image."""


class ImageNotReadable(ClientError, OSError):
    """An image path that cannot be read; ``errno`` and ``filename`` as the ``OSError`` had them."""

    @staticmethod
    def of(error: OSError, path: str) -> ImageNotReadable:
        """The error for ``error``, the OSError subclass it was kept (``except FileNotFoundError`` still works)."""
        kinds = {
            FileNotFoundError: ImageNotFound,
            IsADirectoryError: ImageIsAFolder,
            PermissionError: ImageNotPermitted,
        }
        kind = next((mine for theirs, mine in kinds.items() if isinstance(error, theirs)), ImageNotReadable)
        return kind(error.errno, error.strerror, path)


class ImageNotFound(ImageNotReadable, FileNotFoundError):
    """No file at the image's path."""


class ImageIsAFolder(ImageNotReadable, IsADirectoryError):
    """The image's path is a folder."""


class ImageNotPermitted(ImageNotReadable, PermissionError):
    """The image's file may not be read."""


class ClientClosed(ClientError, RuntimeError):
    """A call on a client after ``close()``/``aclose()`` (or after its ``with`` block): its connections are gone."""


class NotReady(ClientError, TimeoutError):
    """``wait_ready`` ran out of time before every model was loaded."""


class InvalidURL(ClientError, ValueError):
    """A base URL no request can go to: no ``http://`` or ``https://`` scheme, no host, or a port outside 1-65535.
    Raised when the client is made, never retried."""


class ServiceUnreachable(ClientError):
    """No answer from the service: connection refused or reset, or a timeout."""


class TLSError(ServiceUnreachable):
    """The TLS connection failed in a way no retry mends: the certificate does not verify (self-signed, expired, for
    another host) or the port does not speak TLS (an ``https://`` URL for a plain HTTP service). Raised at once."""


class UnexpectedResponse(ClientError):
    """An answer that is not the service's: a success status with a body that is not the document the call expects
    (an HTML page from a proxy, JSON of another shape), or a 503 from /readyz without a readiness document."""

    def __init__(self, status: int, excerpt: str, what: str = "") -> None:
        where = f" from {what}" if what else ""
        super().__init__(f"{status}{where}: not the service's answer: {excerpt!r}")
        self.status = status
        self.excerpt = excerpt

    @classmethod
    def of(cls, response: httpx.Response, limit: int = 200) -> UnexpectedResponse:
        """The error for ``response``, with the start of its body (at most ``limit`` characters, one line)."""
        text = " ".join(response.content[: limit * 4].decode("utf-8", "replace").split())
        excerpt = text if len(text) <= limit else text[: limit - 1] + "…"
        return cls(response.status_code, excerpt, f"{response.request.method} {response.request.url.path}")


class APIError(ClientError):
    """The service answered with an error status; ``detail`` is its explanation, ``code`` its machine-readable name
    of the error (``overloaded``, ``model_not_ready``...; None from a proxy's page or an older service)."""

    code: str | None = None

    def __init__(
        self, status: int, detail: str, retry_after: float | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after
        self.request_id = request_id


class BadRequest(APIError):
    """400: an empty, truncated or corrupt image."""


class Unauthorized(APIError):
    """401: an admin call without a bearer token, or a model call to a service that needs an API key without one."""


class Forbidden(APIError):
    """403: a wrong admin token or API key."""


class NotFound(APIError):
    """404: an unknown style or model, or admin routes on a service without an admin token."""


class Conflict(APIError):
    """409: the parameters changed since the ETag you sent."""


class PayloadTooLarge(APIError):
    """413: the upload or the image's pixel count is over the service's limit."""


class UnsupportedMediaType(APIError):
    """415: not a JPEG, PNG, WebP, BMP or GIF image."""


class InvalidParameter(APIError):
    """422: a parameter out of range, or a model version that would not load."""


class PreconditionRequired(APIError):
    """428: a parameters update without If-Match."""


class TooManyRequests(APIError):
    """429: a rate limit in front of the service; see ``retry_after``."""


class BadGateway(APIError):
    """502: a load balancer or proxy in front of the service got no valid answer from it (the service never answers 502
    itself): a replica refused, closed or reset the connection, as one does when a deploy or a scale-in stops it.
    Retried once (after the first attempt only) on calls safe to repeat; for a change (an enrolment, added faces),
    which is not, whether it was saved is not known, as after a 504: check first (``GET /identities``) before
    sending it again."""


class ServiceUnavailable(APIError):
    """503: a model is loading, its queue is full, or the service is shutting down; see ``retry_after``."""


class OutcomeUnknown(APIError):
    """504: the service, or a gateway or load balancer in front of it, did not answer in time. Any call can get
    one (a gateway's timeout on ``/stylize`` or ``/detect`` is a 504 too). For a change (an enrolment, added faces, a
    deletion) whether it was saved is not known, since it may still be saved after the answer: check first
    (``GET /identities``) before sending it again; the service's own 504 says so in its detail. Never retried."""


class RetryAfterTooLong(APIError):
    """A 429, 502 or 503 to a call the client would repeat (a retry left), whose ``Retry-After`` asks for a longer wait
    than the client's ``max_retry_wait_s``: raised at once, since the client never sends a call sooner than the
    service asked, and does not block longer than that. ``retry_after`` says in how many seconds the call may be
    sent again, so the caller can schedule it. The 503 is a ``ServiceUnavailable`` too, the 429 a
    ``TooManyRequests``, the 502 a ``BadGateway``."""

    def __init__(
        self, status: int, detail: str, retry_after: float, request_id: str | None, max_retry_wait_s: float
    ) -> None:
        super().__init__(status, detail, retry_after, request_id)
        self.max_retry_wait_s = max_retry_wait_s
        self.args = (
            f"{status}: {detail} (the service asked to retry after {retry_after:g} s, more than the client's "
            f"max_retry_wait_s of {max_retry_wait_s:g} s: not retried)",
        )


class ServiceUnavailableTooLong(RetryAfterTooLong, ServiceUnavailable):
    """503 with a ``Retry-After`` longer than ``max_retry_wait_s``."""


class TooManyRequestsTooLong(RetryAfterTooLong, TooManyRequests):
    """429 with a ``Retry-After`` longer than ``max_retry_wait_s``."""


class BadGatewayTooLong(RetryAfterTooLong, BadGateway):
    """502 with a ``Retry-After`` longer than ``max_retry_wait_s`` (a proxy that sends one)."""


ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidParameter,
    428: PreconditionRequired,
    429: TooManyRequests,
    502: BadGateway,
    503: ServiceUnavailable,
    504: OutcomeUnknown,
}
TOO_LONG_BY_STATUS: dict[int, type[RetryAfterTooLong]] = {
    429: TooManyRequestsTooLong,
    502: BadGatewayTooLong,
    503: ServiceUnavailableTooLong,
}


def error_from_response(
    response: httpx.Response, retry_after: float | None, max_retry_wait_s: float | None = None
) -> APIError:
    """The typed error for an error response, carrying the service's ``detail``; a ``RetryAfterTooLong`` when
    ``max_retry_wait_s`` is given (the wait the service asked for is longer than it)."""
    code = None
    try:
        body = response.json()
        detail = str(body["detail"]) if isinstance(body, dict) and "detail" in body else plain_detail(response)
        code = str(body["code"]) if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    except ValueError:
        detail = plain_detail(response)
    status, request_id = response.status_code, response.headers.get("x-request-id")
    too_long = TOO_LONG_BY_STATUS.get(status)
    error: APIError
    if too_long is not None and retry_after is not None and max_retry_wait_s is not None:
        error = too_long(status, detail, retry_after, request_id, max_retry_wait_s)
    else:
        error = ERRORS_BY_STATUS.get(status, APIError)(status, detail, retry_after, request_id)
    error.code = code
    return error


VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _PageText(HTMLParser):
    """The text of an HTML error page: its title, and its visible text (not scripts or styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.title: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self._open:  # </head> may be left out: <body> ends it
            del self._open[self._open.index("head") :]
        if tag not in VOID_TAGS:  # never closed, so never on the stack
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if "title" in self._open:
            self.title.append(data)
        elif not {"script", "style", "head"} & set(self._open):
            self.text.append(data)


def plain_detail(response: httpx.Response) -> str:
    """One short line for an error body that is not the service's JSON: a load balancer's or proxy's HTML page
    (an ALB's 502 is a whole page) becomes its title, else its text; any text is put on one line and cut to
    ``DETAIL_CHARACTERS``; an empty body, the status's reason phrase."""
    text = response.text
    if "html" in response.headers.get("content-type", "") or text.lstrip().lower().startswith(("<html", "<!doctype")):
        page = _PageText()
        page.feed(text)
        page.close()
        text = " ".join(page.title) if "".join(page.title).strip() else " ".join(page.text)
    line = re.sub(r"\s+", " ", text).strip()
    if len(line) > DETAIL_CHARACTERS:
        line = line[: DETAIL_CHARACTERS - 1].rstrip() + "…"
    return line or response.reason_phrase
