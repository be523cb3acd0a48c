"""The HTTP layer end to end in-process: real app, manager, store and decoding; fake predictors."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException

from app.forms import WholeMultiPartParser
from app.main import create_app
from app.manager import SlotPlan
from app.settings import Settings
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.bad_inputs import bad_images
from tests.support.fakes import FakeDetection, FakeDetector, fake_plans, make_fake_store
from tests.support.images import encode, face_like_photo

PHOTO = face_like_photo(320, 240)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path) as client:
        wait_ready(client)
        yield client


def test_detect_returns_boxes_in_original_pixels_with_the_model_version(client: TestClient) -> None:
    response = client.post("/detect", files={"image": ("p.jpg", PHOTO, "image/jpeg")}, data={"conf": "0.5"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "face-detector", "version": "v1"}
    assert body["image"] == {"width": 320, "height": 240}
    assert body["detections"] == [{"box": [80.0, 60.0, 160.0, 120.0], "score": 0.9, "label": "face"}]


def test_detect_drops_faces_smaller_than_min_size(client: TestClient) -> None:
    photo = {"image": ("p.jpg", PHOTO, "image/jpeg")}
    kept = client.post("/detect", files=photo, data={"min_size": "60"})  # the fake's box is 80×60
    dropped = client.post("/detect", files=photo, data={"min_size": "61"})
    assert len(kept.json()["detections"]) == 1 and dropped.json()["detections"] == []
    assert client.post("/detect", files=photo, data={"min_size": "-1"}).status_code == 422


def test_classify_detects_faces_first_by_default(client: TestClient) -> None:
    body = client.post("/classify", files={"image": ("p.jpg", PHOTO)}).json()
    assert body["detector"] == {"name": "face-detector", "version": "v1"}
    assert [f["box"] for f in body["faces"]] == [[80.0, 60.0, 160.0, 120.0]]
    assert body["faces"][0]["probabilities"] == {"female": 0.75, "male": 0.25}


def test_classify_without_detection_treats_the_image_as_one_face(client: TestClient) -> None:
    body = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"}).json()
    assert body["detector"] is None
    assert [(f["box"], f["label"]) for f in body["faces"]] == [(None, "female")]


def test_classify_labels_a_face_below_min_score_unknown_and_keeps_its_score(client: TestClient) -> None:
    def face(min_score: str) -> dict[str, object]:
        data = {"detect_faces": "false", "min_score": min_score}
        return dict(client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data=data).json()["faces"][0])

    unsure = face("0.8")  # the fake says female 0.75
    assert (unsure["label"], unsure["score"]) == ("unknown", 0.75)
    assert unsure["probabilities"] == {"female": 0.75, "male": 0.25}
    assert face("0.7")["label"] == "female"


def test_classify_refuses_a_min_score_outside_zero_to_one(client: TestClient) -> None:
    response = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"min_score": "1.5"})
    assert response.status_code == 422


def test_classify_docs_say_what_the_label_means_and_what_it_must_not_be_used_for(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/classify"]["post"]
    assert "appears to present" in operation["description"] and "Do not use it" in operation["description"]


@pytest.mark.parametrize("fmt, content_type", [("png", "image/png"), ("jpeg", "image/jpeg")])
def test_stylize_with_a_gallery_style_returns_image_bytes(client: TestClient, fmt: str, content_type: str) -> None:
    response = client.post(
        "/stylize", files={"content": ("p.jpg", PHOTO)}, data={"style_name": "red", "format": fmt, "max_side": "160"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert (response.headers["x-model-name"], response.headers["x-model-version"]) == ("adain", "v1")
    assert Image.open(io.BytesIO(response.content)).size == (160, 120)


def test_stylize_accepts_uploaded_styles_with_weights(client: TestClient) -> None:
    style = face_like_photo(64, 64, "PNG")
    response = client.post(
        "/stylize",
        files=[("content", ("p.jpg", PHOTO)), ("style", ("a.png", style)), ("style", ("b.png", style))],
        data={"style_weights": ["0.7", "0.3"], "alpha": "0.5", "manner": "0"},  # 0: any style model takes it
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "given, expected", [(["0.7", "0.3"], (0.7, 0.3)), (["1e308", "1e308"], (0.5, 0.5)), (["5e-324", "0"], (1.0, 0.0))]
)
def test_style_weights_reach_the_model_normalised(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, given: list[str], expected: tuple[float, ...]
) -> None:
    """Weights sum to 1 at the model, also where their sum would overflow a float or the largest is subnormal."""
    from tests.support.fakes import FakeStyle

    seen: list[tuple[float, ...]] = []
    real_predict = FakeStyle.predict

    def recording_predict(self: FakeStyle, batch: list) -> list[Image.Image]:
        seen.extend(request.weights for request in batch)
        return real_predict(self, batch)

    monkeypatch.setattr(FakeStyle, "predict", recording_predict)
    style = face_like_photo(64, 64, "PNG")
    files = [("content", ("p.jpg", PHOTO)), ("style", ("a.png", style)), ("style", ("b.png", style))]
    response = client.post("/stylize", files=files, data={"style_weights": given})
    assert response.status_code == 200, response.text
    assert seen == [pytest.approx(expected)]


def test_stylize_decodes_its_uploads_no_larger_than_the_painting(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1600 px JPEG painted at max_side 160 is decoded at a reduced DCT scale, content and style alike."""
    from app import uploads

    decoded: dict[str, tuple[int, int]] = {}
    real_load = uploads.load_rgb

    def recording_load(image: Image.Image, field: str = "image", data: bytes | None = None) -> Image.Image:
        decoded[field] = real_load(image, field, data).size
        return real_load(image, field, data)

    monkeypatch.setattr(uploads, "load_rgb", recording_load)
    big = face_like_photo(1600, 1200)
    response = client.post(
        "/stylize", files=[("content", ("p.jpg", big)), ("style", ("s.jpg", big))], data={"max_side": "160"}
    )
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (160, 120)
    assert set(decoded) == {"content", "style"}
    assert all(160 <= max(size) <= 400 for size in decoded.values()), decoded  # 1/4 or 1/8 scale, not 1600


def test_uploaded_styles_reach_the_painter_no_larger_than_the_painting(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PNGs have no DCT scale to decode at: each is shrunk once decoded, before the next is read."""
    from app import services

    seen: list[tuple[int, int]] = []
    real_stylize = services.stylize

    async def recording(*args: object, **kwargs: object) -> object:
        seen.extend(image.size for image in args[4].style_images)  # type: ignore[attr-defined]
        return await real_stylize(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services, "stylize", recording)
    big = encode(Image.new("RGB", (1200, 900), (200, 40, 40)), "PNG")
    files = [("content", ("p.jpg", PHOTO))] + [("style", (f"s{i}.png", big)) for i in range(3)]
    response = client.post("/stylize", files=files, data={"max_side": "160"})
    assert response.status_code == 200, response.text
    assert seen == [(160, 120)] * 3


def test_a_painting_thinner_than_the_least_side_is_refused_with_the_max_side_that_keeps_it(client: TestClient) -> None:
    """A 16×1000 photo is accepted (its smaller side is the least, 16) but at max_side 64 it would be painted 1×64:
    a 422 says so and what max_side keeps 16 px; at that max_side it is painted, 16 px wide."""
    thin = encode(Image.new("RGB", (16, 1000), (90, 120, 150)), "PNG")

    def ask(**data: str) -> Any:
        return client.post("/stylize", files={"content": ("thin.png", thin)}, data={"style_name": "red", **data})

    refused = ask(max_side="64")
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("max_side: at max_side 64 this photo would be painted 1×64") and "max_side=1000" in detail
    painted = ask(max_side="1000")
    assert painted.status_code == 200, painted.text
    assert Image.open(io.BytesIO(painted.content)).size == (16, 1000)
    wide = encode(Image.new("RGB", (16, 5000), (90, 120, 150)), "PNG")  # no max_side up to the limit keeps it
    refused = client.post("/stylize", files={"content": ("wide.png", wide)}, data={"style_name": "red"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("content: at max_side")
    assert "no max_side up to 2048 does" in refused.json()["detail"]


def test_a_time_budget_without_method_nst_is_refused_not_ignored(client: TestClient) -> None:
    files = {"content": ("p.jpg", PHOTO)}
    response = client.post("/stylize", files=files, data={"style_name": "red", "max_seconds": "5"})
    assert response.status_code == 422 and response.json()["detail"].startswith("max_seconds: only method=nst")
    assert client.post("/stylize", files=files, data={"style_name": "red"}).status_code == 200


def test_a_stylize_field_sent_in_the_query_is_refused(client: TestClient) -> None:
    response = client.post("/stylize?max_side=64", files={"content": ("p.jpg", PHOTO)}, data={"style_name": "red"})
    assert response.status_code == 422 and response.json()["detail"].startswith("max_side: a form field, sent in")


def test_a_request_mixes_at_most_eight_styles(client: TestClient) -> None:
    small = encode(Image.new("RGB", (40, 40), (200, 40, 40)), "PNG")
    files = [("content", ("p.jpg", PHOTO))] + [("style", (f"s{i}.png", small)) for i in range(6)]
    response = client.post("/stylize", files=files, data={"style_name": ["red"] * 3})
    assert response.status_code == 422 and response.json()["detail"].startswith("style: at most 8 styles")


def test_catalog_lists_styles_and_models(client: TestClient) -> None:
    styles = client.get("/styles").json()
    assert [s["name"] for s in styles["styles"]] == ["red"]
    image = client.get(styles["styles"][0]["url"])
    assert image.headers["content-type"] == "image/jpeg"
    models = client.get("/models").json()["models"]
    assert {m["role"] for m in models} == {"detector", "classifier", "style", "gallery"}
    assert all(m["options"] == [] for m in models)  # this style model has no decoder-side matching: no manner
    assert client.get("/styles/nope/image").status_code == 404


def test_styles_says_that_nst_runs_here_and_within_which_bounds(tmp_path: Path) -> None:
    """The page offers method=nst, and bounds its time budget, by what GET /styles says (DEEPCANVAS_NST_*)."""
    with fake_app_client(tmp_path, nst_max_side=256, nst_max_seconds=12.5) as client:
        nst = wait_ready(client).get("/styles").json()["nst"]
    assert nst == {"available": True, "reason": None, "max_side": 256, "max_seconds": 12.5}


PARAMETER_CASES = [
    ("/detect", {}, {}, 422),  # no image field at all
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": "2"}, 422),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": "abc"}, 422),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"iou": "-0.1"}, 422),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"max_det": "0"}, 422),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"imgsz": "100000"}, 422),
    ("/detect", {"picture": ("p.jpg", PHOTO)}, {}, 422),
    ("/classify", {"image": ("p.jpg", PHOTO)}, {"detect_faces": "perhaps"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {}, 422),  # no style
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "nope"}, 404),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "alpha": "1.5"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "method": "magic"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "format": "gif"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "max_side": "99999"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "max_side": "4000"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": ["1", "2"]}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": "-1"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": "nan"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": "inf"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": "1e400"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "style_weights": "0"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": ["red", "red"], "method": "nst"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "method": "nst", "max_seconds": "9999"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "method": "nst", "max_seconds": "0"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "method": "nst", "max_seconds": "0.5"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "manner": "1.5"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "manner": "0.5"}, 422),  # no matching
    ("/stylize", {"content": ("p.jpg", PHOTO)}, {"style_name": "red", "method": "nst", "manner": "0"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO), "style": ("s.png", PHOTO)}, {"style_name": "red"}, 422),
    ("/stylize", {"content": ("p.jpg", PHOTO), "style": ("s.txt", b"not an image")}, {}, 415),
]


def test_an_nst_budget_under_a_second_is_refused_not_answered_with_the_photo(tmp_path: Path) -> None:
    """A budget spent before the first L-BFGS step returned the photo unpainted, as a 200."""
    data = {"style_name": "red", "method": "nst", "max_seconds": "0.5"}
    with fake_app_client(tmp_path) as client:
        response = wait_ready(client).post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=data)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == "max_seconds: must be at least 1: below that the photo came back unpainted"
    with fake_app_client(tmp_path / "lower", nst_max_seconds=0.5) as client:  # a service whose own limit is lower
        response = wait_ready(client).post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=data)
        assert response.status_code == 200, response.text


# The body's machine-readable code of each 4xx status these tests meet
CODES = {400: "invalid_image", 404: "not_found", 413: "payload_too_large", 415: "unsupported_media_type"}
CODES |= {422: "invalid_parameter"}


@pytest.mark.parametrize("path, files, data, status", PARAMETER_CASES)
def test_bad_parameters_get_a_clear_4xx(client: TestClient, path: str, files: dict, data: dict, status: int) -> None:
    response = client.post(path, files=files or {"unused": ("x", b"")}, data=data)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert response.json()["code"] == CODES[status]


NOT_FINITE_CASES = [
    ("/detect", "image", "conf"),
    ("/detect", "image", "iou"),
    ("/detect", "image", "min_size"),
    ("/classify", "image", "min_score"),
    ("/identify", "image", "threshold"),
    ("/stylize", "content", "alpha"),
    ("/stylize", "content", "manner"),
    ("/stylize", "content", "max_seconds"),
]


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
@pytest.mark.parametrize("path, field, parameter", NOT_FINITE_CASES)
def test_a_number_that_is_not_finite_is_refused_as_such(
    client: TestClient, path: str, field: str, parameter: str, value: str
) -> None:
    """Not "should be less than or equal to 1" for NaN: the message says what is wrong with the value."""
    data = {parameter: value, **({"style_name": "red"} if path == "/stylize" else {})}
    response = client.post(path, files={field: ("p.jpg", PHOTO)}, data=data)
    assert response.status_code == 422, response.text
    assert "finite" in response.json()["detail"] and parameter in response.json()["detail"]


@pytest.mark.parametrize("max_side", ["4096", "100000"])
def test_a_max_side_over_the_limit_names_the_one_limit_whatever_the_value(client: TestClient, max_side: str) -> None:
    data = {"style_name": "red", "max_side": max_side}
    response = client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=data)
    assert response.status_code == 422 and response.json()["detail"] == "max_side: must be at most 2048"


def test_nst_refuses_a_max_side_beyond_its_own_limit_rather_than_painting_smaller(client: TestClient) -> None:
    data = {"style_name": "red", "method": "nst", "max_side": "1024"}
    response = client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=data)
    assert response.status_code == 422 and "method=nst paints at most 512 px" in response.json()["detail"]


REPEATED_CASES = [
    ("/detect", [("image", ("a.jpg", PHOTO)), ("image", ("b.jpg", PHOTO))], [], "image: sent 2 times"),
    ("/classify", [("image", ("a.jpg", PHOTO))], [("min_score", "0.1"), ("min_score", "0.9")], "min_score: sent 2"),
    ("/stylize", [("content", ("a.jpg", PHOTO)), ("content", ("b.jpg", PHOTO))], [("style_name", "red")], "content:"),
    ("/verify", [("image_a", ("a.jpg", PHOTO))] * 3 + [("image_b", ("b.jpg", PHOTO))], [], "image_a: sent 3 times"),
]


@pytest.mark.parametrize("path, files, data, said", REPEATED_CASES)
def test_a_single_valued_field_sent_twice_is_refused_not_half_answered(
    client: TestClient, path: str, files: list, data: list, said: str
) -> None:
    """FastAPI alone keeps the last value and drops the rest: two photos to /detect got one answer."""
    body = [(name, (None, value)) for name, value in data]
    response = client.post(path, files=files + body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(said)


def test_a_field_sent_twice_is_refused_whatever_the_case_of_the_content_type(client: TestClient) -> None:
    """Content types are case-insensitive, and starlette parses the form either way: the check must too."""
    boundary = "Bb0"
    part = 'Content-Disposition: form-data; name="image"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    body = b"".join(f"--{boundary}\r\n{part}".encode() + PHOTO + b"\r\n" for _ in range(2))
    headers = {"Content-Type": f"Multipart/Form-Data; boundary={boundary}"}
    response = client.post("/detect", content=body + f"--{boundary}--\r\n".encode(), headers=headers)
    said = "image: sent 2 times; it takes one value (one request per photo)"
    assert (response.status_code, response.json()["detail"]) == (422, said)


@pytest.mark.parametrize("path", ["/detect", "/classify", "/stylize", "/identify", "/verify"])
def test_a_multipart_body_cut_short_is_a_400_not_a_missing_field(client: TestClient, path: str) -> None:
    """The photo cut in the middle used to vanish, and the route answered "image: Field required"."""
    request = client.build_request("POST", path, files={"image": ("p.jpg", PHOTO)}, data={"style_name": "red"})
    whole = request.read()
    headers = {"Content-Type": request.headers["Content-Type"]}
    response = client.post(path, content=whole[: len(whole) // 2], headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "the multipart body ends before its closing boundary: it was cut short"


def test_fields_declared_as_lists_still_repeat(client: TestClient) -> None:
    response = client.post(
        "/stylize", files=[("content", ("p.jpg", PHOTO)), ("style_name", (None, "red")), ("style_name", (None, "red"))]
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", sorted(bad_images()))
@pytest.mark.parametrize("path, field", [("/detect", "image"), ("/classify", "image"), ("/stylize", "content")])
def test_bad_images_get_a_clear_4xx_on_every_endpoint(client: TestClient, kind: str, path: str, field: str) -> None:
    data, statuses = bad_images()[kind]
    response = client.post(path, files={field: ("upload.jpg", data, "image/jpeg")}, data={"style_name": "red"})
    assert response.status_code in statuses, response.text
    assert response.json()["detail"].startswith(f"{field}:")
    assert response.json()["code"] == CODES[response.status_code]


def test_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with fake_app_client(tmp_path, max_upload_bytes=4096) as client:
        wait_ready(client)
        response = client.post("/detect", files={"image": ("p.jpg", b"\xff" * 10_000)})
        assert response.status_code == 413
        assert "exceeds 4096" in response.json()["detail"] and response.json()["code"] == "payload_too_large"


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    """A detection held inside the detector fills the queue of one; the next request is refused. (Six requests
    at once against a 0.3 s detection could miss each other when a loaded machine spreads them out.)"""
    entered, release, held = threading.Event(), threading.Event(), [False]

    class HeldDetector(FakeDetector):
        def predict(self, batch: list[Any]) -> list[list[FakeDetection]]:
            if held[0]:
                entered.set()
                assert release.wait(60), "the test never released the detection"
            return super().predict(batch)

    plans = [
        SlotPlan("detector", "detector", lambda f, m, d: HeldDetector(m)) if p.slot == "detector" else p
        for p in fake_plans()
    ]
    store = make_fake_store(tmp_path / "store")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache", queue_size=1)  # type: ignore[arg-type]
    with TestClient(create_app(settings, plans)) as client, ThreadPoolExecutor(1) as pool:
        wait_ready(client)
        held[0] = True
        first = pool.submit(client.post, "/detect", files={"image": ("p.jpg", PHOTO)})
        try:
            assert entered.wait(60), "the first detection never started"
            busy = client.post("/detect", files={"image": ("p.jpg", PHOTO)})
        finally:
            release.set()
        assert first.result(timeout=60).status_code == 200
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] and "busy" in busy.json()["detail"] and busy.json()["code"] == "overloaded"


def test_a_model_that_fails_to_load_keeps_readyz_at_503(tmp_path: Path) -> None:
    store = make_fake_store(tmp_path / "store")
    (store / "face-gender" / "v1" / "weights.bin").write_bytes(b"corrupted")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, fake_plans())) as client:
        deadline = time.monotonic() + 60  # bounds a hang
        while client.get("/readyz").json()["models"]["classifier"]["state"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        readiness = client.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["models"]["classifier"]["state"] == "failed"
        assert "bytes" in readiness.json()["models"]["classifier"]["detail"]
        refused = client.post("/classify", files={"image": ("p.jpg", PHOTO)}, data={"detect_faces": "false"})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["code"] == "model_not_ready"  # not "overloaded": retrying soon will not help
        assert client.get("/healthz").status_code == 200


def test_a_model_whose_manifest_breaks_its_builder_fails_alone_and_says_why(tmp_path: Path) -> None:
    """A manifest of the wrong shape raised AttributeError in a builder: the load task ended, every later role
    stayed "loading" with no detail, and nothing was logged."""

    def broken(folder: Path, manifest: object, device: str) -> object:
        raise AttributeError("'str' object has no attribute 'get'")

    plans = [p if p.slot != "classifier" else SlotPlan("classifier", "classifier", broken) for p in fake_plans()]
    store = make_fake_store(tmp_path / "store")
    settings = Settings(store=store.as_uri(), cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, plans)) as client:
        deadline = time.monotonic() + 60  # bounds a hang
        while any(m["state"] == "loading" for m in client.get("/readyz").json()["models"].values()):
            assert time.monotonic() < deadline, client.get("/readyz").json()
            time.sleep(0.02)
        models = client.get("/readyz").json()["models"]
    assert models["classifier"]["state"] == "failed" and "AttributeError" in models["classifier"]["detail"]
    others = {role: m["state"] for role, m in models.items() if role != "classifier"}
    assert others == {"detector": "ready", "style": "ready", "gallery": "ready", "embedder": "absent"}  # no embedder


def test_every_error_the_service_raises_names_its_own_code() -> None:
    """A subclass that forgot its code inherited its parent's: an admin 401 said "bad_request"."""
    import app.routers.admin  # the errors defined beside their routes
    import app.runtime  # noqa: F401
    from app.errors import DeepCanvasError

    def every(cls: type[DeepCanvasError]) -> list[type[DeepCanvasError]]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in every(child))]

    errors = every(DeepCanvasError)
    assert len(errors) > 15
    for error in errors[1:]:
        assert "code" in vars(error), f"{error.__name__} has no code of its own"
    codes = [error.code for error in errors]
    assert len(codes) == len(set(codes)), sorted(codes)


@pytest.mark.parametrize(("method", "path"), [("POST", "/detect/"), ("GET", "/models/"), ("GET", "/healthz/")])
def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host_header(
    client: TestClient, method: str, path: str
) -> None:
    """A 307 made the client upload the photo again, to a URL built from the Host header it sent."""
    files = {"image": ("p.jpg", PHOTO)} if method == "POST" else None
    response = client.request(method, path, files=files, headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["code"] == "not_found"


def test_an_empty_multipart_body_names_the_missing_photo_rather_than_a_cut(client: TestClient) -> None:
    response = client.post("/detect", content=b"", headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert (response.status_code, response.json()["detail"]) == (422, "image: Field required")


def test_a_part_cut_short_has_its_file_closed_with_the_others(tmp_path: Path) -> None:
    """The part cut in the middle never reaches the form: its file (on disk once large) must be closed too."""
    boundary = "b0"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n\r\n'.encode()
    body = head + PHOTO + b"\r\n" + head + b"x" * 3_000_000

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
    parser = WholeMultiPartParser(headers, stream())
    with pytest.raises(MultiPartException, match="cut short"):
        asyncio.run(parser.parse())
    files = parser._files_to_close_on_error
    assert len(files) == 2 and all(file.closed for file in files)
