"""The retry policy, decided call by call against a scripted transport (the real service: tests/e2e)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from deepcanvas import (
    APIError,
    AsyncClient,
    BadGateway,
    Client,
    ClientError,
    RetryAfterTooLong,
    ServiceUnavailable,
    ServiceUnreachable,
    TooManyRequests,
)
from deepcanvas.errors import InvalidParameter, NotFound, OutcomeUnknown, PayloadTooLarge
from deepcanvas.retry import RetryPolicy, parse_retry_after
from deepcanvas.schemas import Readiness

DETECTED = {"model": {"name": "d", "version": "v1"}, "image": {"width": 4, "height": 3}, "detections": []}
ACTIVATED = {"name": "face-gender", "role": "classifier", "version": "v2", "previous": "v1"}
LOADING = {"ready": False, "models": {"classifier": {"name": "face-gender", "ref": "stable", "state": "loading"}}}
READY = {
    "ready": True,
    "models": {"classifier": {"name": "face-gender", "ref": "stable", "state": "ready", "version": "v4"}},
}


def busy() -> httpx.Response:
    return httpx.Response(503, json={"detail": "queue full", "code": "overloaded"}, headers={"Retry-After": "2"})


class Script:
    """Answers requests with the given responses (or raises the given errors) in order, and records them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _client(script: Script, **options: object) -> Client:
    return Client("http://dc", transport=httpx.MockTransport(script), admin_token="t", **options)  # type: ignore[arg-type]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == pytest.approx(7)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_a_503_is_retried_after_its_retry_after_until_it_succeeds(sleeps: list[float]) -> None:
    script = Script(busy(), busy(), httpx.Response(200, json=DETECTED))
    with _client(script, retries=3) as client:
        assert client.detect(b"jpeg bytes").image.width == 4
    assert sleeps == [2, 2]
    assert len(script.requests) == 3
    assert all(b"jpeg bytes" in r.content for r in script.requests)  # the upload is sent again each time


def test_after_the_last_retry_the_503_is_raised_with_detail_and_retry_after(sleeps: list[float]) -> None:
    script = Script(busy(), busy(), busy())
    with _client(script, retries=2) as client, pytest.raises(ServiceUnavailable) as raised:
        client.classify(b"jpeg bytes")
    assert (raised.value.status, raised.value.detail, raised.value.retry_after) == (503, "queue full", 2)
    assert raised.value.code == "overloaded"  # the service's machine-readable name of the error
    assert len(script.requests) == 3 and sleeps == [2, 2]


def test_an_error_without_a_code_has_none_and_a_proxys_page_has_none() -> None:
    """An older service's body (detail only) and a load balancer's HTML page carry no code: None, not a guess."""
    for answer in (
        httpx.Response(503, json={"detail": "loading"}),
        bad_gateway(),
        httpx.Response(503, json={"code": 3}),
    ):
        with _client(Script(answer), retries=0) as client, pytest.raises(APIError) as raised:
            client.detect(b"x")
        assert raised.value.code is None


def test_a_retry_after_longer_than_the_longest_wait_is_raised_at_once(sleeps: list[float]) -> None:
    script = Script(httpx.Response(503, json={"detail": "loading"}, headers={"Retry-After": "120"}))
    with _client(script, max_retry_wait_s=30) as client, pytest.raises(ServiceUnavailable) as raised:
        client.detect(b"x")
    assert raised.value.retry_after == 120 and sleeps == []


def _asked_to_wait(status: int, seconds: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": "loading"}, headers={"Retry-After": seconds, "X-Request-ID": "r7"})


@pytest.mark.parametrize(("status", "kind"), [(503, ServiceUnavailable), (429, TooManyRequests), (502, BadGateway)])
def test_a_retry_after_too_long_to_wait_says_when_to_send_the_call_again(
    sleeps: list[float], status: int, kind: type[APIError]
) -> None:
    """Never sooner than the service asked, never blocking longer than max_retry_wait_s: the caller schedules it."""
    script = Script(_asked_to_wait(status, "120"), httpx.Response(200, json=DETECTED))
    with _client(script, max_retry_wait_s=30) as client, pytest.raises(RetryAfterTooLong) as raised:
        client.detect(b"x")
    error = raised.value
    assert isinstance(error, kind) and isinstance(error, ClientError)  # what callers caught before still catches it
    assert (error.status, error.retry_after, error.max_retry_wait_s, error.request_id) == (status, 120, 30, "r7")
    assert str(error) == (
        f"{status}: loading (the service asked to retry after 120 s, more than the client's max_retry_wait_s "
        "of 30 s: not retried)"
    )
    assert sleeps == [] and len(script.requests) == 1


def test_the_async_client_raises_a_retry_after_too_long_to_wait_the_same_way(sleeps: list[float]) -> None:
    script = Script(_asked_to_wait(429, "31"), httpx.Response(200, json=DETECTED))

    async def detect() -> None:
        async with AsyncClient("http://dc", max_retry_wait_s=30, transport=httpx.MockTransport(script)) as client:
            await client.detect(b"x")

    with pytest.raises(RetryAfterTooLong, match="retry after 31 s") as raised:
        asyncio.run(detect())
    assert isinstance(raised.value, TooManyRequests) and raised.value.retry_after == 31
    assert sleeps == [] and len(script.requests) == 1


@pytest.mark.parametrize(("status", "kind"), [(503, ServiceUnavailable), (429, TooManyRequests)])
def test_with_no_retries_a_long_retry_after_gets_the_plain_error(
    sleeps: list[float], status: int, kind: type[APIError]
) -> None:
    """retries=0 sends once whatever the wait: max_retry_wait_s is not why it was not retried."""
    script = Script(_asked_to_wait(status, "45"))
    with _client(script, retries=0, max_retry_wait_s=30) as client, pytest.raises(kind) as raised:
        client.detect(b"x")
    error = raised.value
    assert not isinstance(error, RetryAfterTooLong) and "not retried" not in str(error)
    assert (error.status, error.detail, error.retry_after, error.request_id) == (status, "loading", 45, "r7")
    assert sleeps == [] and len(script.requests) == 1


def test_after_the_last_retry_a_long_retry_after_gets_the_plain_error(sleeps: list[float]) -> None:
    """The retries ran out on a short wait; the last answer's long one is not why the call was not sent again."""
    script = Script(_asked_to_wait(503, "2"), _asked_to_wait(503, "45"))
    with _client(script, retries=1, max_retry_wait_s=30) as client, pytest.raises(ServiceUnavailable) as raised:
        client.detect(b"x")
    assert not isinstance(raised.value, RetryAfterTooLong) and raised.value.retry_after == 45
    assert sleeps == [2] and len(script.requests) == 2


def test_the_async_client_with_no_retries_gets_the_plain_error_too(sleeps: list[float]) -> None:
    script = Script(_asked_to_wait(503, "45"))

    async def detect() -> None:
        transport = httpx.MockTransport(script)
        async with AsyncClient("http://dc", retries=0, max_retry_wait_s=30, transport=transport) as client:
            await client.detect(b"x")

    with pytest.raises(ServiceUnavailable) as raised:
        asyncio.run(detect())
    assert not isinstance(raised.value, RetryAfterTooLong) and raised.value.retry_after == 45
    assert sleeps == [] and len(script.requests) == 1


def test_a_retry_after_as_long_as_the_longest_wait_is_waited_out(sleeps: list[float]) -> None:
    script = Script(_asked_to_wait(429, "30"), httpx.Response(200, json=DETECTED))
    with _client(script, max_retry_wait_s=30) as client:
        client.detect(b"x")
    assert sleeps == [30]


def test_a_call_never_repeated_gets_the_plain_error_whatever_its_retry_after(sleeps: list[float]) -> None:
    """Activation is not sent twice at all: a wait too long to retry after says nothing about it."""
    client = _client(Script(_asked_to_wait(503, "120")), max_retry_wait_s=30)
    with client, pytest.raises(ServiceUnavailable) as raised:
        client.activate("face-gender", "v2")
    assert not isinstance(raised.value, RetryAfterTooLong) and raised.value.retry_after == 120


def test_a_503_without_retry_after_backs_off_exponentially(sleeps: list[float]) -> None:
    plain = httpx.Response(503, json={"detail": "busy"})
    with _client(Script(plain, plain, plain, httpx.Response(200, json=DETECTED)), backoff_s=1) as client:
        client.detect(b"x")
    assert [0.5 <= s <= 1 for s in sleeps] == [True, False, False]
    assert 1 <= sleeps[1] <= 2 and 2 <= sleeps[2] <= 4


@pytest.mark.parametrize(
    ("status", "error"),
    [(413, PayloadTooLarge), (422, InvalidParameter), (504, OutcomeUnknown)],
    ids=["too-large", "invalid", "outcome-unknown"],
)
def test_client_errors_are_raised_at_once_as_their_type(sleeps: list[float], status: int, error: type) -> None:
    script = Script(httpx.Response(status, json={"detail": "image: too big"}, headers={"X-Request-ID": "r1"}))
    with _client(script) as client, pytest.raises(error) as raised:
        client.detect(b"x")
    assert (raised.value.status, raised.value.detail, raised.value.request_id) == (status, "image: too big", "r1")
    assert len(script.requests) == 1 and sleeps == []


# What an AWS ALB answers when the target closed or reset the connection (a task stopped by a deploy or a scale-in).
ALB_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def bad_gateway() -> httpx.Response:
    return httpx.Response(502, text=ALB_502, headers={"content-type": "text/html", "server": "awselb/2.0"})


def test_a_load_balancers_502_is_retried_with_backoff_on_inference(sleeps: list[float]) -> None:
    """A 502 was raised at once: a deploy's stopped task failed the requests in flight on it, though each was safe
    to send again (to a task that is still running)."""
    script = Script(bad_gateway(), httpx.Response(200, json=DETECTED))
    with _client(script, backoff_s=1) as client:
        assert client.detect(b"jpeg bytes").image.width == 4
    assert len(script.requests) == 2 and all(b"jpeg bytes" in r.content for r in script.requests)
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1  # the jittered backoff of a 503 without Retry-After


def test_a_502_is_retried_once_only_as_the_request_itself_may_be_what_brings_replicas_down(
    sleeps: list[float],
) -> None:
    """Sent again after every 502, a request that crashes the replica serving it took ``retries`` more with it."""
    script = Script(bad_gateway(), bad_gateway(), httpx.Response(200, json=DETECTED))
    with _client(script, backoff_s=1, retries=3) as client, pytest.raises(BadGateway):
        client.detect(b"jpeg bytes")
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_a_502_after_a_503_is_not_retried_but_a_503_after_a_502_is(sleeps: list[float]) -> None:
    script = Script(busy(), bad_gateway())
    with _client(script) as client, pytest.raises(BadGateway):
        client.styles()
    assert len(script.requests) == 2
    script = Script(bad_gateway(), busy(), httpx.Response(200, json=DETECTED))
    with _client(script) as client:
        client.detect(b"jpeg bytes")
    assert len(script.requests) == 3


def test_a_502_with_retry_after_is_retried_after_it_and_the_next_one_is_raised_as_bad_gateway(
    sleeps: list[float],
) -> None:
    script = Script(*[httpx.Response(502, json={"detail": "upstream gone"}, headers={"Retry-After": "3"})] * 2)
    with _client(script, retries=2) as client, pytest.raises(BadGateway) as raised:
        client.styles()
    assert (raised.value.status, raised.value.detail, raised.value.retry_after) == (502, "upstream gone", 3)
    assert isinstance(raised.value, APIError) and sleeps == [3] and len(script.requests) == 2


def test_a_deletion_is_repeated_after_a_502_as_deleting_twice_changes_nothing_more(sleeps: list[float]) -> None:
    script = Script(bad_gateway(), httpx.Response(204))
    with _client(script) as client:
        client.delete_identity("abc123")
    assert [r.method for r in script.requests] == ["DELETE", "DELETE"] and len(sleeps) == 1


def test_a_deletion_repeated_after_its_first_attempt_may_have_run_takes_a_404_as_done(sleeps: list[float]) -> None:
    """The first DELETE went through before the gateway's 502 (or the dropped connection): the retry's 404 was raised
    as NotFound, for the identity the call had just deleted."""
    dropped = httpx.ReadError("connection reset after the request was sent")
    for first in (bad_gateway(), dropped):
        script = Script(first, httpx.Response(404, json={"detail": "no identity abc123"}))
        with _client(script) as client:
            assert client.delete_identity("abc123") is None
        assert [r.method for r in script.requests] == ["DELETE", "DELETE"]


def test_a_deletion_whose_first_answer_is_a_404_still_raises_not_found(sleeps: list[float]) -> None:
    """Nothing was sent before that could have deleted it: the identity never existed (a wrong id)."""
    for first in ([], [busy()], [httpx.ConnectError("refused")]):
        script = Script(*first, httpx.Response(404, json={"detail": "no identity abc123"}))
        with _client(script) as client, pytest.raises(NotFound):
            client.delete_identity("abc123")


@pytest.mark.parametrize("call", ["enrol", "add_faces", "activate"])
def test_a_502_is_not_repeated_on_a_call_that_is_not_safe_to_repeat(sleeps: list[float], call: str) -> None:
    """The replica may have saved the enrolment before it went: sent again, the person would be enrolled twice."""
    enrolled = {"id": "abc", "name": "Ada", "faces": 1, "stale_faces": 0}
    times = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    script = Script(bad_gateway(), httpx.Response(201, json=enrolled | times))
    with _client(script) as client, pytest.raises(BadGateway) as raised:
        if call == "enrol":
            client.enrol("Ada", b"jpeg bytes")
        elif call == "add_faces":
            client.add_faces("abc", b"jpeg bytes")
        else:
            client.activate("face-gender", "v2")
    assert raised.value.status == 502 and "502 Bad Gateway" in raised.value.detail
    assert len(script.requests) == 1 and sleeps == []


def test_the_async_client_retries_a_502_too(sleeps: list[float]) -> None:
    script = Script(bad_gateway(), httpx.Response(200, json=DETECTED))

    async def detect() -> int:
        async with AsyncClient("http://dc", backoff_s=1, transport=httpx.MockTransport(script)) as client:
            return (await client.detect(b"x")).image.width

    assert asyncio.run(detect()) == 4
    assert len(script.requests) == 2 and len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1


def test_activation_is_not_repeated_on_503(sleeps: list[float]) -> None:
    script = Script(busy(), httpx.Response(200, json=ACTIVATED))
    with _client(script) as client, pytest.raises(ServiceUnavailable):
        client.activate("face-gender", "v2")
    assert len(script.requests) == 1 and sleeps == []


def test_activation_is_repeated_when_the_connection_was_refused(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=ACTIVATED))
    with _client(script) as client:
        assert client.activate("face-gender", "v2").previous == "v1"
    assert len(script.requests) == 2 and len(sleeps) == 1


def test_a_dropped_connection_repeats_inference_but_not_activation(sleeps: list[float]) -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    with _client(Script(dropped, httpx.Response(200, json=DETECTED))) as client:
        client.detect(b"x")
    with _client(Script(dropped, httpx.Response(200, json=ACTIVATED))) as client, pytest.raises(ServiceUnreachable):
        client.activate("face-gender", "v2")


def test_a_timeout_is_never_repeated(sleeps: list[float]) -> None:
    script = Script(httpx.ReadTimeout("slow"), httpx.Response(200, json=DETECTED))
    with _client(script) as client, pytest.raises(ServiceUnreachable):
        client.detect(b"x")
    assert len(script.requests) == 1 and sleeps == []


def test_a_parameters_update_is_conditional_and_so_repeated(sleeps: list[float]) -> None:
    document = {"version": 4, "params": {}}
    script = Script(busy(), httpx.Response(200, json=document))
    with _client(script) as client:
        assert client.update_params({"detector_conf": 0.4}, 3).etag == '"4"'
    assert [r.headers["if-match"] for r in script.requests] == ['"3"', '"3"']
    assert script.requests[0].headers["authorization"] == "Bearer t"


def test_admin_calls_without_a_token_fail_before_sending() -> None:
    script = Script()
    with Client("http://dc", transport=httpx.MockTransport(script)) as client, pytest.raises(ValueError, match="token"):
        client.params()
    assert script.requests == []


def test_the_async_client_follows_the_same_policy(sleeps: list[float]) -> None:
    script = Script(busy(), httpx.Response(200, json=DETECTED))

    async def run(call: Callable[[AsyncClient], object]) -> object:
        async with AsyncClient("http://dc", transport=httpx.MockTransport(script)) as client:
            return await call(client)  # type: ignore[misc]

    assert asyncio.run(run(lambda c: c.detect(b"x"))).image.height == 3  # type: ignore[attr-defined]
    assert sleeps == [2] and len(script.requests) == 2


def starting_up() -> Script:
    """A service that refuses the connection, then answers 503 while loading, then is ready."""
    return Script(httpx.ConnectError("refused"), httpx.Response(503, json=LOADING), httpx.Response(200, json=READY))


def test_wait_ready_polls_through_a_refused_connection_and_a_503_until_ready(sleeps: list[float]) -> None:
    script = starting_up()
    with _client(script, retries=0) as client:
        assert client.wait_ready(interval=0.25).models["classifier"].version == "v4"
    assert sleeps == [0.25, 0.25] and len(script.requests) == 3


def test_wait_ready_polls_through_a_load_balancers_502_while_the_service_starts(sleeps: list[float]) -> None:
    """Behind a load balancer or proxy, a service not up yet is a 502, not a refused connection: wait_ready raised
    it at once instead of waiting."""
    script = Script(bad_gateway(), bad_gateway(), httpx.Response(200, json=READY))
    with _client(script, retries=0) as client:
        assert client.wait_ready(interval=0.25).ready
    assert sleeps == [0.25, 0.25] and len(script.requests) == 3


def test_wait_ready_raises_timeout_error_when_the_time_is_up(sleeps: list[float]) -> None:
    with _client(Script(httpx.Response(503, json=LOADING))) as client, pytest.raises(TimeoutError, match="not ready"):
        client.wait_ready(timeout=0)
    assert sleeps == []


def test_the_async_client_waits_for_readiness_the_same_way(sleeps: list[float]) -> None:
    script = starting_up()

    async def wait(timeout: float) -> Readiness:
        async with AsyncClient("http://dc", retries=0, transport=httpx.MockTransport(script)) as client:
            return await client.wait_ready(timeout=timeout, interval=0.25)

    assert asyncio.run(wait(60)).models["classifier"].version == "v4"
    assert sleeps == [0.25, 0.25] and len(script.requests) == 3
    script.answers.append(httpx.Response(503, json=LOADING))
    with pytest.raises(TimeoutError, match="not ready"):
        asyncio.run(wait(0))
    assert sleeps == [0.25, 0.25] and len(script.requests) == 4


def test_policy_gives_up_after_the_configured_retries() -> None:
    policy = RetryPolicy(retries=2, backoff_s=0.1, max_wait_s=10)
    assert policy.after_response(1, 503, 3, repeatable=True) == 3
    assert policy.after_response(2, 503, 3, repeatable=True) is None
    assert policy.after_response(0, 500, None, repeatable=True) is None
    assert policy.after_response(0, 429, 11, repeatable=True) is None and policy.too_long(0, 429, 11, repeatable=True)
    assert not policy.too_long(0, 503, 10, repeatable=True) and not policy.too_long(0, 503, 11, repeatable=False)
    assert not policy.too_long(2, 503, 11, repeatable=True)  # no retry left: the wait is not why it is not repeated


@pytest.mark.parametrize("etag, sent", [(3, '"3"'), ("3", '"3"'), ('"3"', '"3"'), ("*", "*")])
def test_a_version_given_as_digits_is_sent_as_an_etag(sleeps: list[float], etag: str | int, sent: str) -> None:
    """The service answers a bare ``If-Match: 3`` with 400: the client quotes a version however it was given."""
    script = Script(httpx.Response(200, json={"version": 4, "params": {}}))
    with _client(script) as client:
        client.update_params({"detector_conf": 0.4}, etag)
    assert script.requests[0].headers["if-match"] == sent


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (bad_gateway(), "502 Bad Gateway"),
        (httpx.Response(500, text="<!DOCTYPE html><body><h1>Oops</h1>\n<p>try later</p></body>"), "Oops try later"),
        (httpx.Response(500, text="upstream\n  reset\n"), "upstream reset"),
        (  # no </head> (it may be left out) and no title: the body's text, not nothing
            httpx.Response(502, text="<html><head><meta charset=utf-8><body><h1>Upstream reset</h1><p>retry</p>"),
            "Upstream reset retry",
        ),
        (httpx.Response(503, content=b""), "Service Unavailable"),
    ],
)
def test_an_error_page_that_is_not_the_services_json_becomes_one_short_line(
    sleeps: list[float], answer: httpx.Response, detail: str
) -> None:
    """A load balancer's 502 is a whole HTML page: the error's detail (and the CLI's message) was that page, tags and
    line breaks included, printed over several lines."""
    with _client(Script(answer), retries=0) as client, pytest.raises(APIError) as raised:
        client.styles()
    assert raised.value.detail == detail


def test_a_long_error_body_is_cut_to_one_line_that_says_so(sleeps: list[float]) -> None:
    with _client(Script(httpx.Response(500, text="x" * 5000)), retries=0) as client, pytest.raises(APIError) as raised:
        client.styles()
    assert len(raised.value.detail) == 300 and raised.value.detail.endswith("…")
