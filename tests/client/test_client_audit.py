"""Defects a user audit found in the client: each against a scripted transport (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from deepcanvas import AsyncClient, Client, ClientError, UnexpectedResponse

ACTIVATED = {"name": "face-gender", "role": "classifier", "version": "v2", "previous": "v1"}


def _recording(answer: httpx.Response, sent: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("call", ["activate", "rollback"])
def test_a_model_name_is_one_path_segment_however_it_is_spelt(call: str) -> None:
    sent: list[httpx.Request] = []
    transport = _recording(httpx.Response(200, json=ACTIVATED), sent)
    with Client("http://dc", transport=transport, admin_token="t") as client:
        if call == "activate":
            client.activate("nothing/../face-detector", "v999")
        else:
            client.rollback("nothing/../face-detector")
    [request] = sent
    assert request.url.raw_path.decode() == f"/admin/models/nothing%2F..%2Fface-detector/{call}"


PROXY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>" + "<p>nginx</p>" * 100 + "</body></html>"
NOT_READY = {"ready": False, "models": {"classifier": {"name": "face-gender", "ref": "stable", "state": "loading"}}}
READY = {"ready": True, "models": {"classifier": {"name": "face-gender", "ref": "stable", "state": "ready"}}}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text=PROXY_PAGE, headers={"content-type": "text/html"}),
        httpx.Response(200, json={"message": "hello from another service"}),
        httpx.Response(200, content=b""),
    ],
    ids=["html", "other-json", "empty"],
)
def test_a_success_that_is_not_the_services_answer_is_a_client_error(answer: httpx.Response) -> None:
    with Client("http://dc", transport=httpx.MockTransport(lambda _: answer)) as client:
        with pytest.raises(UnexpectedResponse) as raised:
            client.detect(b"jpeg bytes")
        with pytest.raises(UnexpectedResponse):
            client.stylize(b"jpeg bytes", style_name="starry-night")
    assert isinstance(raised.value, ClientError)
    assert raised.value.status == 200 and len(raised.value.excerpt) <= 200
    assert "POST /detect" in str(raised.value)


class Answers:
    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.answers.pop(0)


def _readyz_answers() -> Answers:
    return Answers(
        httpx.Response(503, text=PROXY_PAGE, headers={"content-type": "text/html"}),  # a load balancer's page
        httpx.Response(503, json=NOT_READY),
        httpx.Response(200, json=READY),
    )


def test_wait_ready_keeps_polling_through_a_503_without_a_readiness_document(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("deepcanvas.client.time.sleep", lambda _: None)
    answers = _readyz_answers()
    with Client("http://dc", transport=httpx.MockTransport(answers)) as client:
        assert client.wait_ready(timeout=60, interval=0.01).ready
    assert answers.answers == []


def test_async_wait_ready_keeps_polling_through_a_503_without_a_readiness_document() -> None:
    answers = _readyz_answers()

    async def wait() -> bool:
        async with AsyncClient("http://dc", transport=httpx.MockTransport(answers)) as client:
            return (await client.wait_ready(timeout=60, interval=0.001)).ready

    assert asyncio.run(wait())
    assert answers.answers == []


def test_stylize_with_style_images_and_style_names_is_refused_before_anything_is_sent() -> None:
    sent: list[httpx.Request] = []
    client = Client("http://dc", transport=_recording(httpx.Response(500), sent))
    with client, pytest.raises(ValueError, match="not both"):
        client.stylize(b"photo", style=b"painting", style_name="starry-night")
    assert sent == []


@pytest.mark.parametrize("call", ["enrol", "add_faces"])
@pytest.mark.parametrize("images", [[], ()], ids=["list", "tuple"])
def test_enrolling_without_an_image_is_refused_before_anything_is_sent(call: str, images: list[bytes]) -> None:
    sent: list[httpx.Request] = []
    client = Client("http://dc", transport=_recording(httpx.Response(415), sent), admin_token="t")
    with client, pytest.raises(ValueError, match=f"^{call} needs at least one image$"):
        client.enrol("Ada", images) if call == "enrol" else client.add_faces("some-id", images)
    assert sent == []


def _closed_sync() -> None:
    client = Client("http://dc", transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"status": "ok"})))
    with client:
        client.health()
    client.health()


def _closed_async() -> None:
    async def run() -> None:
        transport = httpx.MockTransport(lambda _: httpx.Response(200, json={"status": "ok"}))
        async with AsyncClient("http://dc", transport=transport) as client:
            await client.health()
        await client.health()

    asyncio.run(run())


def _never_ready() -> None:
    not_ready = httpx.Response(503, json=NOT_READY)
    with Client("http://dc", transport=httpx.MockTransport(lambda _: not_ready)) as client:
        client.wait_ready(timeout=0)


def _no_admin_token() -> None:
    with Client("http://dc", transport=httpx.MockTransport(lambda _: httpx.Response(500))) as client:
        client.params()


def _not_an_image() -> None:
    with Client("http://dc", transport=httpx.MockTransport(lambda _: httpx.Response(500))) as client:
        client.detect(3.14)  # type: ignore[arg-type]


def _missing_photo(folder: Path) -> None:
    with Client("http://dc", transport=httpx.MockTransport(lambda _: httpx.Response(500))) as client:
        client.detect(folder / "missing.jpg")


def _undecodable_answer() -> None:
    """httpx's DecodingError (a body its content-encoding does not decode) is no TransportError."""

    def garbled(request: httpx.Request) -> httpx.Response:  # a stream: a body given whole is decoded at once
        return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip"))

    with Client("http://dc", transport=httpx.MockTransport(garbled)) as client:
        client.health()


def _unsendable_key() -> None:
    Client("http://dc", api_key="clé-non-ascii-123456")


def _key_with_a_line_break() -> None:
    AsyncClient("http://dc", admin_token="pasted-token-1234\n")


@pytest.mark.parametrize(
    "misuse, also, said",
    [
        (_closed_sync, RuntimeError, "closed"),
        (_closed_async, RuntimeError, "closed"),
        (_never_ready, TimeoutError, "not ready"),
        (_no_admin_token, ValueError, "admin_token"),
        (_not_an_image, TypeError, "not float"),
        (_missing_photo, FileNotFoundError, "missing.jpg"),
        (_undecodable_answer, ClientError, "DecodingError"),
        (_unsendable_key, ValueError, "api_key: printable ASCII"),
        (_key_with_a_line_break, ValueError, "admin_token: printable ASCII"),
    ],
    ids=lambda value: getattr(value, "__name__", None) or "",
)
def test_everything_the_client_raises_is_a_client_error_and_what_it_was(
    misuse: Callable[..., None], also: type[Exception], said: str, tmp_path: Path
) -> None:
    """``except ClientError`` catches every failure of a call; ``except ValueError`` (and the others) still catch
    what they did."""
    with pytest.raises(ClientError, match=said) as raised:
        misuse(tmp_path) if misuse is _missing_photo else misuse()
    assert isinstance(raised.value, also)
    if misuse is _missing_photo:
        assert raised.value.filename == str(tmp_path / "missing.jpg")


def test_an_image_folder_is_a_client_error_and_still_an_is_a_directory_error(tmp_path: Path) -> None:
    client = Client("http://dc", transport=httpx.MockTransport(lambda _: httpx.Response(500)))
    with client, pytest.raises(IsADirectoryError) as raised:
        client.classify(tmp_path)
    assert isinstance(raised.value, ClientError) and raised.value.filename == str(tmp_path)
