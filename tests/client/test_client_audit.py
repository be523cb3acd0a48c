"""Defects a user audit found in the client: each against a scripted transport (httpx.MockTransport)."""

from __future__ import annotations

import asyncio

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
