"""The Python client against the real service (``deepcanvas serve`` subprocesses): results, errors, retries."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from deepcanvas import AsyncClient, Client, ServiceUnavailable
from deepcanvas.errors import BadRequest, Conflict, InvalidParameter, NotFound, PayloadTooLarge, UnsupportedMediaType
from deepcanvas.schemas import ClassifyResponse, DetectResponse
from tests.support.images import face_like_photo
from tests.support.servers import HTTP_TIMEOUT, LiveServer

pytestmark = pytest.mark.e2e
TOKEN = "client-e2e-token-0123456789abcdef"


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[Client]:
    with Client(live_server.url, timeout=120, retries=0) as dc:
        yield dc


@pytest.fixture(scope="module")
def broken_classifier_server(embedded_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A store copy whose stable classifier fails verification (so /classify is 503), with admin routes on."""
    store = tmp_path_factory.mktemp("store") / "store"
    shutil.copytree(embedded_store, store)
    stable = (store / "face-gender" / "aliases.json").read_text().split('"')[3]
    (store / "face-gender" / stable / "weights.safetensors").write_bytes(b"not the weights")
    env = {"DEEPCANVAS_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "DEEPCANVAS_ADMIN_TOKEN": TOKEN}
    server = LiveServer.start(store=store.as_uri(), env=env)
    try:
        server.wait_for("/healthz", timeout=180)
        with Client(server.url, retries=0) as dc:
            deadline = time.monotonic() + 180
            while dc.readiness().models["classifier"].state != "failed":
                assert time.monotonic() < deadline, server.log()[-4000:]
                time.sleep(0.5)
        yield server
    finally:
        server.stop()


def _requests_total(url: str, route: str, status: int) -> float:
    text = httpx.get(f"{url}/metrics", timeout=HTTP_TIMEOUT).text
    pattern = rf'deepcanvas_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*status="{status}"[^}}]*\}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text))


def test_every_kind_of_image_input_gives_the_same_detections(
    client: Client, sample_photo_bytes: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(sample_photo_bytes)
    decoded = Image.open(io.BytesIO(sample_photo_bytes))
    answers = [client.detect(i, conf=0.05) for i in (path, str(path), sample_photo_bytes, path.open("rb"))]
    assert all(isinstance(a, DetectResponse) for a in answers)
    assert all(a == answers[0] for a in answers)
    assert answers[0].detections, "the portrait has a face at conf 0.05"
    from_pil = client.detect(decoded, conf=0.05)  # re-encoded as PNG: same size, boxes within a pixel or two
    assert from_pil.image == answers[0].image
    assert from_pil.detections[0].box == pytest.approx(answers[0].detections[0].box, abs=3)


def test_classify_returns_typed_faces_with_and_without_detection(client: Client, sample_photo_bytes: bytes) -> None:
    labels = next(m.labels for m in client.models().models if m.role == "classifier")
    whole = client.classify(sample_photo_bytes, detect_faces=False)
    assert isinstance(whole, ClassifyResponse) and whole.detector is None
    assert [f.box for f in whole.faces] == [None]
    assert set(whole.faces[0].probabilities) == set(labels)
    detected = client.classify(sample_photo_bytes, conf=0.05)
    assert detected.detector is not None and all(f.box is not None for f in detected.faces)
    # a probability is at most 1: min_score 1.0 abstains on every face, keeping its score
    unsure = client.classify(sample_photo_bytes, detect_faces=False, min_score=1.0)
    assert unsure.faces[0].label == "unknown" and unsure.faces[0].score == pytest.approx(whole.faces[0].score)


def test_stylize_returns_the_painting_and_the_model_that_painted_it(client: Client, tmp_path: Path) -> None:
    style = client.styles().styles[0].name
    painted = client.stylize(face_like_photo(320, 240), style_name=style, max_side=64, format="jpeg")
    assert painted.media_type == "image/jpeg" and painted.model.name
    assert painted.image().size == (64, 48)
    uploaded = client.stylize(face_like_photo(320, 240), style=Image.new("RGB", (64, 64), "red"), max_side=64)
    assert uploaded.save(tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert painted.nst_steps is None  # AdaIN: one pass
    photo = face_like_photo(320, 240)
    plain, manner = (client.stylize(photo, style_name=style, max_side=64, manner=m).image() for m in (0.0, 1.0))
    difference = np.abs(np.asarray(plain, dtype=np.float64) - np.asarray(manner, dtype=np.float64)).mean()
    assert difference > 1.0  # the stable style model matches each painting's manner when asked


def test_classical_nst_through_the_client_reports_its_steps(client: Client) -> None:
    catalog = client.styles()
    assert catalog.nst is not None and catalog.nst.available and catalog.nst.max_seconds >= 2  # torch is here
    style = catalog.styles[0].name
    painted = client.stylize(face_like_photo(96, 64), style_name=style, method="nst", max_side=48, max_seconds=2)
    assert painted.image().size == (48, 32)
    assert painted.nst_steps is not None and painted.nst_steps >= 1


def test_health_readiness_and_models(client: Client) -> None:
    assert client.health().status == "ok"
    assert client.readiness().ready is True
    assert {m.role for m in client.models().models} >= {"detector", "classifier", "style"}


@pytest.mark.parametrize(
    ("image", "options", "error", "detail"),
    [
        (b"plain text, not an image", {}, UnsupportedMediaType, "not a JPEG"),
        (face_like_photo()[:200], {}, BadRequest, "image"),
        (face_like_photo(), {"conf": 2.0}, InvalidParameter, "conf"),
    ],
    ids=["415-not-an-image", "400-truncated", "422-conf-out-of-range"],
)
def test_errors_carry_the_services_status_and_detail(
    client: Client, image: bytes, options: dict[str, float], error: type, detail: str
) -> None:
    with pytest.raises(error) as raised:
        client.detect(image, **options)
    assert raised.value.status in (400, 415, 422) and detail in raised.value.detail
    assert raised.value.request_id


def test_an_unknown_style_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound, match="no-such-style"):
        client.stylize(face_like_photo(), style_name="no-such-style")


def test_a_503_is_retried_after_retry_after_then_raised(broken_classifier_server: LiveServer) -> None:
    url = broken_classifier_server.url
    before = _requests_total(url, "/classify", 503)
    with Client(url, retries=0) as dc, pytest.raises(ServiceUnavailable) as raised:
        dc.classify(face_like_photo(), detect_faces=False)
    assert raised.value.retry_after == 5 and "not loaded" in raised.value.detail
    started = time.monotonic()
    with Client(url, retries=1) as dc, pytest.raises(ServiceUnavailable):
        dc.classify(face_like_photo(), detect_faces=False)
    assert time.monotonic() - started >= 5, "the second attempt waited for Retry-After"
    assert _requests_total(url, "/classify", 503) - before == 3  # one, then two: sent exactly retries + 1 times
    with Client(url, retries=3, max_retry_wait_s=2) as dc, pytest.raises(ServiceUnavailable):
        dc.classify(face_like_photo(), detect_faces=False)  # Retry-After 5 > 2: raised at once
    assert _requests_total(url, "/classify", 503) - before == 4


def test_parameters_round_trip_with_etags_and_limit_uploads(broken_classifier_server: LiveServer) -> None:
    photo = face_like_photo(640, 480)
    with Client(broken_classifier_server.url, admin_token=TOKEN, retries=0) as dc:
        document = dc.params()
        changed = dc.update_params({"max_upload_bytes": len(photo) // 2}, document.etag)
        assert changed.version == document.version + 1
        try:
            with pytest.raises(PayloadTooLarge) as raised:
                dc.detect(photo)
            assert raised.value.status == 413
            with pytest.raises(Conflict):
                dc.update_params({"detector_conf": 0.3}, document.etag)  # stale
        finally:
            restored = dc.update_params({"max_upload_bytes": document.params.max_upload_bytes}, changed.etag)
        assert restored.params == document.params
        assert dc.detect(photo).image.width == 640


def test_the_async_client_answers_concurrent_calls(live_server: LiveServer, sample_photo_bytes: bytes) -> None:
    async def run() -> list[DetectResponse]:
        async with AsyncClient(live_server.url, timeout=120) as dc:
            return await asyncio.gather(*(dc.detect(sample_photo_bytes, conf=0.05) for _ in range(4)))

    answers = asyncio.run(run())
    assert len(answers) == 4 and all(a == answers[0] for a in answers)


# Last on its server: it repairs the classifier that the tests above need broken.
def test_activation_repairs_the_classifier_and_a_waiting_client_then_succeeds(
    broken_classifier_server: LiveServer,
) -> None:
    with Client(broken_classifier_server.url, admin_token=TOKEN, retries=0) as dc:
        with pytest.raises(InvalidParameter):
            dc.activate("face-gender", "v999")  # no such version: 422, the (failed) slot stays as it was
        switched = dc.activate("face-gender", "v1")
        assert (switched.role, switched.version) == ("classifier", "v1")
        assert dc.classify(face_like_photo(), detect_faces=False).model.version == "v1"
