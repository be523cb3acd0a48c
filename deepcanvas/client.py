"""``Client`` and ``AsyncClient``: the DeepCanvas HTTP API as typed Python calls.

    from deepcanvas import Client
    with Client("http://127.0.0.1:8000") as dc:
        faces = dc.classify("photo.jpg").faces

Both send the same ``Call`` objects (``deepcanvas.calls``) under the same retry policy
(``deepcanvas.retry``); errors are ``deepcanvas.errors`` exceptions carrying the service's ``detail``, every one a
``ClientError``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias, TypeVar

import httpx

from deepcanvas import calls
from deepcanvas.calls import Call, ImageInput, Stylized, Tile
from deepcanvas.credentials import header_safe
from deepcanvas.errors import (
    BadGateway,
    ClientClosed,
    ClientError,
    InvalidURL,
    NotReady,
    ServiceUnreachable,
    TLSError,
    UnexpectedResponse,
    UsageError,
    error_from_response,
)
from deepcanvas.identity_client import AsyncIdentityMethods, IdentityMethods
from deepcanvas.retry import RetryPolicy, may_have_arrived, parse_retry_after, tls_failure
from deepcanvas.schemas import (
    ActivateResponse,
    ClassifyResponse,
    DetectResponse,
    Health,
    ModelsResponse,
    ParamsDocument,
    Readiness,
    StylesResponse,
)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
Method = Literal["adain", "nst"]
Format = Literal["png", "jpeg"]
# What ``verify`` takes, as httpx's own ``verify`` does: True (the default trust store), False (no verification),
# the path of a CA bundle (a PEM file, or a folder of hashed certificates), or an ssl.SSLContext.
Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext


def shown_url(url: str) -> str:
    """``url`` as a message may show it: without the user and password it may carry (``https://user:pw@host/`` is
    ``https://host/``), since messages reach logs and terminals. Wherever ``url`` has an ``@``, everything between
    its ``://`` (or its start, with no scheme) and its last ``@`` goes, read from the raw string rather than by a URL
    parser: a password with a ``#``, ``?`` or ``/`` that was not percent-encoded would be read as a fragment, query,
    path or port, and shown. An ``@`` in a path costs the host too, never the password."""
    if "@" not in url:
        return url
    scheme, separator, rest = url.partition("://")
    if not separator or "@" in scheme:  # no scheme before the user and password
        scheme, separator, rest = "", "", url
    return scheme + separator + rest.rpartition("@")[2]


def checked_url(base_url: str) -> str:
    """``base_url`` without its trailing slash; ``InvalidURL`` for one no request can go to, when the client is made
    (httpx reads ``localhost:8000`` as the scheme ``localhost``, and sends port 99999 as another port), and for one
    with a query or a fragment: a base URL needs neither, and a ``#`` or ``?`` in a password not percent-encoded
    makes one (httpx reads ``http://admin:42#pw@host`` as the host ``admin``, port 42). The message shows the URL
    without its user and password (``shown_url``)."""
    shown = shown_url(base_url)
    if "?" in base_url or "#" in base_url:  # never literal elsewhere in a URL: a query or a fragment begins there
        raise InvalidURL(
            f"{shown!r}: a base URL takes no query or fragment ('?' or '#'); percent-encode reserved characters in "
            "a password ('#' as %23, '?' as %3F, '/' as %2F, '@' as %40)"
        )
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as error:
        raise InvalidURL(f"{shown!r} is not a URL: {_unreadable(base_url, shown, error)}") from error
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidURL(f"{shown!r} is not an http:// or https:// URL with a host, such as {DEFAULT_URL}")
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidURL(f"{shown!r}: a port is 1 to 65535, not {url.port}")
    return base_url.rstrip("/")


def _unreadable(base_url: str, shown: str, error: httpx.InvalidURL) -> str:
    """Why httpx cannot read ``base_url``, in words that quote nothing of its user and password: httpx's reason for
    the URL without them, which names only what is left (a password with a ``/`` is read as a port and quoted)."""
    if shown == base_url:
        return str(error)
    try:
        httpx.URL(shown)
    except httpx.InvalidURL as without:
        return str(without)
    return "its user and password (not shown) are not valid in a URL: percent-encode their reserved characters"


def checked_secret(name: str, secret: str | None) -> str | None:
    """``secret`` when an HTTP header can carry it as it is (``header_safe``: printable ASCII without spaces);
    ``UsageError`` when made, rather than an encoding error or a malformed header at the first call."""
    if secret and not header_safe(secret):
        raise UsageError(f"{name}: printable ASCII characters without spaces or line breaks (as the service's are)")
    return secret


def ssl_verify(verify: Verify) -> bool | ssl.SSLContext:
    """``verify`` as httpx takes it without a warning: a CA bundle's path becomes an SSLContext trusting it alone
    (httpx 0.28 deprecated ``verify=<path>``, and a path in an ``os.PathLike`` it never took). ``UsageError`` when the
    bundle cannot be read or holds no certificate, when the client is made rather than at its first call.

    ``True`` is passed on as it is, so that httpx keeps honouring ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    path = os.fspath(verify)
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except OSError as error:  # ssl.SSLError (not PEM, no certificate) is an OSError too
        reason = error.strerror or getattr(error, "reason", None) or error
        raise UsageError(f"verify: {path} is not a readable CA bundle (PEM certificates): {reason}") from error


@contextmanager
def trust_loaded() -> Iterator[None]:
    """Around making an httpx client: a CA file it cannot load (``SSL_CERT_FILE`` naming a missing or non-PEM
    file: httpx reads it when the client is made) is a ``UsageError`` naming the variables, not a bare OSError."""
    try:
        yield
    except OSError as error:
        named = ", ".join(
            f"{name}={os.environ[name]!r}" for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if name in os.environ
        )
        raise UsageError(f"cannot load the CA certificates to trust ({named or 'no SSL_CERT_*'}): {error}") from error


class _Base:
    """What both clients share: the URL, the retry policy, the credentials and how answers become errors.

    ``retries`` repeats a call that is safe to repeat after a 503, 429 or 502 (a load balancer or proxy in front of
    the service whose replica went mid-request; a 502 once, after the first attempt only), waiting its
    ``Retry-After``, else a jittered exponential backoff from ``backoff_s``, or after a dropped connection; and any
    call after a refused connection or a host name that did not resolve. A ``Retry-After`` longer than
    ``max_retry_wait_s`` is never waited out, nor retried sooner than it asks: where a retry was left,
    ``RetryAfterTooLong`` (a ``ServiceUnavailable`` for a 503, ``TooManyRequests`` for a 429, ``BadGateway`` for a
    502) is raised at once, its ``retry_after`` saying when to send the call again;
    where none was (``retries=0``, or the last one spent), the plain error, with its ``retry_after`` too. Failures
    that would only repeat themselves (a TLS certificate that does not verify: ``TLSError``) are raised at once too,
    and so are a timeout and a 504 (``OutcomeUnknown``), which the service may still be working on
    (``deepcanvas.retry`` says why).

    ``verify`` says which certificates an ``https://`` service may present, as httpx's ``verify`` does: ``True``
    (the default) trusts certifi's CAs, or the file named by ``SSL_CERT_FILE`` (the folder by ``SSL_CERT_DIR``)
    when that is set, instead; a CA bundle's path (a private CA, a self-signed certificate) trusts that bundle alone;
    an ``ssl.SSLContext`` is used as it is (a client certificate, say); ``False`` verifies nothing (anyone on the
    path can read and change the calls: for tests only). A ``transport`` given to the client brings its own TLS
    settings, and ``verify`` is not used.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        retries: int,
        admin_token: str | None,
        backoff_s: float,
        max_retry_wait_s: float,
        api_key: str | None = None,
    ) -> None:
        self.base_url = checked_url(base_url)
        self.shown_url = shown_url(self.base_url)  # for messages: no user or password
        self.timeout = timeout
        self.policy = RetryPolicy(retries, backoff_s, max_retry_wait_s)
        self._admin_token = checked_secret("admin_token", admin_token)
        # Sent on every call that carries no admin token (the service's DEEPCANVAS_API_KEYS guard its models).
        self._key = {"Authorization": f"Bearer {api_key}"} if checked_secret("api_key", api_key) else {}

    def _admin(self) -> dict[str, str]:
        if not self._admin_token:
            raise UsageError("admin calls need the client's admin_token (the service's DEEPCANVAS_ADMIN_TOKEN)")
        return {"Authorization": f"Bearer {self._admin_token}"}

    def _check_open(self, http: httpx.Client | httpx.AsyncClient) -> None:
        """``ClientClosed`` for a call after ``close()``, instead of httpx's RuntimeError."""
        if http.is_closed:
            raise ClientClosed(f"this client of {self.shown_url} is closed: make a new one")

    def _request(self, call: Call[Any]) -> dict[str, Any]:
        headers = call.headers if "Authorization" in call.headers else self._key | call.headers
        return {"files": call.files or None, "data": call.data or None, "json": call.json, "headers": headers}

    @staticmethod
    def _read(call: Call[T], response: httpx.Response) -> T:
        """The call's answer from ``response``; ``UnexpectedResponse`` when it is not the document the call expects."""
        try:
            return call.read(response)
        except ValueError as error:  # pydantic's ValidationError included
            raise UnexpectedResponse.of(response) from error

    @staticmethod
    def _succeeded(call: Call[Any], response: httpx.Response, unsure: bool) -> bool:
        """Whether ``response`` answers ``call`` as asked; ``unsure``: an earlier attempt may have been applied."""
        return response.status_code in call.ok_statuses or (unsure and response.status_code in call.ok_if_repeated)

    def _retry_wait(self, call: Call[Any], response: httpx.Response, attempt: int) -> float:
        """Seconds to wait before sending an unsuccessful call again; raises its error when it is time to give up."""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        wait = self.policy.after_response(attempt, response.status_code, retry_after, call.repeatable)
        if wait is None:
            too_long = self.policy.too_long(attempt, response.status_code, retry_after, call.repeatable)
            raise error_from_response(response, retry_after, self.policy.max_wait_s if too_long else None)
        return wait

    def _failure(self, call: Call[Any], error: httpx.RequestError, attempt: int) -> float:
        """Seconds to wait before sending ``call`` again after ``error``; raises its ``ClientError`` to give up."""
        where = f"{call.method} {self.shown_url}{call.path}"
        if not isinstance(error, httpx.TransportError):  # an answer httpx could not decode, say: not a transport's
            raise ClientError(f"{where}: {type(error).__name__}: {error}") from error
        tls = tls_failure(error)
        if tls is not None:
            reason = getattr(tls, "verify_message", None) or tls.reason or str(tls)
            raise TLSError(f"{where}: TLS failed ({reason}); not retried: check the URL and the certificate") from error
        wait = self.policy.after_error(attempt, error, call.repeatable)
        if wait is None:
            raise ServiceUnreachable(f"{where}: {type(error).__name__}: {error}") from error
        return wait


class Client(_Base, IdentityMethods):
    """A blocking client; thread-safe, keeps connections alive. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = 60.0,
        retries: int = 3,
        admin_token: str | None = None,
        *,
        backoff_s: float = 0.5,
        max_retry_wait_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        api_key: str | None = None,
        verify: Verify = True,
    ) -> None:
        super().__init__(base_url, timeout, retries, admin_token, backoff_s, max_retry_wait_s, api_key)
        with trust_loaded():
            self._http = httpx.Client(
                base_url=self.base_url, timeout=timeout, transport=transport, verify=ssl_verify(verify)
            )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        self._check_open(self._http)
        attempt, unsure = 0, False
        while True:
            try:
                response = self._http.request(call.method, call.path, **self._request(call))
            except httpx.RequestError as error:
                wait = self._failure(call, error, attempt)
                unsure = unsure or may_have_arrived(error)
            else:
                if self._succeeded(call, response, unsure):
                    return self._read(call, response)
                wait = self._retry_wait(call, response, attempt)
                unsure = unsure or may_have_arrived(response)
            time.sleep(wait)
            attempt += 1

    def detect(
        self,
        image: ImageInput,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        imgsz: int | None = None,
        min_size: float | None = None,
        tile: Tile | None = None,
        landmarks: bool = False,
    ) -> DetectResponse:
        """Face boxes in the image's pixels, with scores and labels; none smaller than ``min_size`` pixels.

        ``tile`` (``auto``, ``on``, ``off``; default: the model's) also reads a large photo as overlapping tiles;
        ``landmarks=True`` adds the face embedder's 5 points to each box.
        """
        return self.send(calls.detect(image, conf, iou, max_det, imgsz, min_size, tile, landmarks))

    def classify(
        self,
        image: ImageInput,
        detect_faces: bool = True,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        imgsz: int | None = None,
        min_score: float | None = None,
        tile: Tile | None = None,
        min_size: float | None = None,
    ) -> ClassifyResponse:
        """Label and probabilities for every detected face, or for the whole image as one face.

        A face whose score is below ``min_score`` (default: the service's) is labelled ``"unknown"``; the detection
        step takes ``detect``'s options, ``min_size`` included (faces smaller than it are not classified).
        """
        options = (conf, iou, max_det, imgsz, min_score, tile, min_size)
        return self.send(calls.classify(image, detect_faces, *options))

    def stylize(
        self,
        content: ImageInput,
        style: ImageInput | Sequence[ImageInput] | None = None,
        style_name: str | Sequence[str] | None = None,
        style_weights: Sequence[float] | None = None,
        alpha: float | None = None,
        preserve_color: bool = False,
        method: Method = "adain",
        max_side: int | None = None,
        format: Format = "png",
        max_seconds: float | None = None,
        manner: float | None = None,
    ) -> Stylized:
        """``content`` painted in uploaded styles or gallery styles, not both (several: interpolated).

        ``max_seconds`` bounds method=nst's optimisation; ``Stylized.nst_steps`` says how many steps it took.
        ``manner`` (0-1, style models that support it): how strongly each painting's own palette and marks are
        matched at every scale; the model's default when None.
        """
        options = (alpha, preserve_color, method, max_side, format, max_seconds, manner)
        call = calls.stylize(content, style, style_name, style_weights, *options)
        return self.send(call)

    def styles(self) -> StylesResponse:
        return self.send(calls.styles())

    def models(self) -> ModelsResponse:
        return self.send(calls.models())

    def health(self) -> Health:
        return self.send(calls.health())

    def readiness(self) -> Readiness:
        return self.send(calls.readiness())

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.5) -> Readiness:
        """Poll /readyz until every model is loaded, through refused connections and a gateway's 502 while the service
        starts; ``NotReady`` (a TimeoutError) after ``timeout`` seconds, and at once what polling cannot mend
        (``TLSError``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.readiness()
                if state.ready:
                    return state
            except TLSError:
                raise
            except (ServiceUnreachable, UnexpectedResponse, BadGateway):  # not up yet, or a proxy answering for it
                pass
            if time.monotonic() >= deadline:
                raise NotReady(f"{self.shown_url} not ready after {timeout} s")
            time.sleep(interval)

    def params(self) -> ParamsDocument:
        """The runtime parameters; pass ``.etag`` to ``update_params``."""
        return self.send(calls.params(self._admin()))

    def update_params(self, patch: dict[str, Any], etag: str | int) -> ParamsDocument:
        return self.send(calls.update_params(self._admin(), patch, etag))

    def activate(self, name: str, version: str) -> ActivateResponse:
        return self.send(calls.activate(self._admin(), name, version))

    def rollback(self, name: str) -> ActivateResponse:
        return self.send(calls.rollback(self._admin(), name))


class AsyncClient(_Base, AsyncIdentityMethods):
    """The same calls for asyncio code; ``async with AsyncClient(...) as dc: await dc.detect(...)``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        timeout: float = 60.0,
        retries: int = 3,
        admin_token: str | None = None,
        *,
        backoff_s: float = 0.5,
        max_retry_wait_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        api_key: str | None = None,
        verify: Verify = True,
    ) -> None:
        super().__init__(base_url, timeout, retries, admin_token, backoff_s, max_retry_wait_s, api_key)
        with trust_loaded():
            self._http = httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout, transport=transport, verify=ssl_verify(verify)
            )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        self._check_open(self._http)
        attempt, unsure = 0, False
        while True:
            try:
                response = await self._http.request(call.method, call.path, **self._request(call))
            except httpx.RequestError as error:
                wait = self._failure(call, error, attempt)
                unsure = unsure or may_have_arrived(error)
            else:
                if self._succeeded(call, response, unsure):
                    return self._read(call, response)
                wait = self._retry_wait(call, response, attempt)
                unsure = unsure or may_have_arrived(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def detect(
        self,
        image: ImageInput,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        imgsz: int | None = None,
        min_size: float | None = None,
        tile: Tile | None = None,
        landmarks: bool = False,
    ) -> DetectResponse:
        """Face boxes in the image's pixels, with scores and labels; none smaller than ``min_size`` pixels.

        ``tile`` (``auto``, ``on``, ``off``; default: the model's) also reads a large photo as overlapping tiles;
        ``landmarks=True`` adds the face embedder's 5 points to each box.
        """
        return await self.send(calls.detect(image, conf, iou, max_det, imgsz, min_size, tile, landmarks))

    async def classify(
        self,
        image: ImageInput,
        detect_faces: bool = True,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        imgsz: int | None = None,
        min_score: float | None = None,
        tile: Tile | None = None,
        min_size: float | None = None,
    ) -> ClassifyResponse:
        """Label and probabilities for every detected face, or for the whole image as one face.

        A face whose score is below ``min_score`` (default: the service's) is labelled ``"unknown"``; the detection
        step takes ``detect``'s options, ``min_size`` included (faces smaller than it are not classified).
        """
        options = (conf, iou, max_det, imgsz, min_score, tile, min_size)
        return await self.send(calls.classify(image, detect_faces, *options))

    async def stylize(
        self,
        content: ImageInput,
        style: ImageInput | Sequence[ImageInput] | None = None,
        style_name: str | Sequence[str] | None = None,
        style_weights: Sequence[float] | None = None,
        alpha: float | None = None,
        preserve_color: bool = False,
        method: Method = "adain",
        max_side: int | None = None,
        format: Format = "png",
        max_seconds: float | None = None,
        manner: float | None = None,
    ) -> Stylized:
        """``content`` painted in uploaded styles or gallery styles, not both (several: interpolated).

        ``max_seconds`` bounds method=nst's optimisation; ``Stylized.nst_steps`` says how many steps it took.
        ``manner`` (0-1, style models that support it): how strongly each painting's own palette and marks are
        matched at every scale; the model's default when None.
        """
        options = (alpha, preserve_color, method, max_side, format, max_seconds, manner)
        call = calls.stylize(content, style, style_name, style_weights, *options)
        return await self.send(call)

    async def styles(self) -> StylesResponse:
        return await self.send(calls.styles())

    async def models(self) -> ModelsResponse:
        return await self.send(calls.models())

    async def health(self) -> Health:
        return await self.send(calls.health())

    async def readiness(self) -> Readiness:
        return await self.send(calls.readiness())

    async def wait_ready(self, timeout: float = 120.0, interval: float = 0.5) -> Readiness:
        """Poll /readyz until every model is loaded, through refused connections and a gateway's 502 while the service
        starts; ``NotReady`` (a TimeoutError) after ``timeout`` seconds, and at once what polling cannot mend
        (``TLSError``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = await self.readiness()
                if state.ready:
                    return state
            except TLSError:
                raise
            except (ServiceUnreachable, UnexpectedResponse, BadGateway):  # not up yet, or a proxy answering for it
                pass
            if time.monotonic() >= deadline:
                raise NotReady(f"{self.shown_url} not ready after {timeout} s")
            await asyncio.sleep(interval)

    async def params(self) -> ParamsDocument:
        """The runtime parameters; pass ``.etag`` to ``update_params``."""
        return await self.send(calls.params(self._admin()))

    async def update_params(self, patch: dict[str, Any], etag: str | int) -> ParamsDocument:
        return await self.send(calls.update_params(self._admin(), patch, etag))

    async def activate(self, name: str, version: str) -> ActivateResponse:
        return await self.send(calls.activate(self._admin(), name, version))

    async def rollback(self, name: str) -> ActivateResponse:
        return await self.send(calls.rollback(self._admin(), name))
