"""Defects a user audit found in the client: each against a scripted transport (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from deepcanvas import Client

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
