"""The real service (``deepcanvas serve`` subprocess on the embedded store) answering real photos."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.telemetry import NST_ROUTE
from tests.support.bad_inputs import bad_images, good_images
from tests.support.servers import HTTP_TIMEOUT, LiveServer

pytestmark = pytest.mark.e2e


def _content_photos(shared: Path | None) -> list[tuple[str, bytes]]:
    folder = (shared / "data" / "style-transfer" / "content") if shared else None
    if folder and folder.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.jpg"))[:4]]
    return [(f"{kind}.img", data) for kind, data in sorted(good_images().items())]


@pytest.fixture(scope="module")
def photos(request: pytest.FixtureRequest) -> list[tuple[str, bytes]]:
    try:
        shared: Path | None = request.getfixturevalue("shared_dir")
    except pytest.skip.Exception:
        shared = None
    return _content_photos(shared)


def test_readyz_reports_every_model_ready(live_server: LiveServer) -> None:
    body = httpx.get(f"{live_server.url}/readyz", timeout=HTTP_TIMEOUT).json()
    assert body["ready"] is True
    assert set(body["models"]) == {"detector", "classifier", "style", "gallery", "embedder"}
    assert all(m["state"] == "ready" and m["version"] for m in body["models"].values())


def test_detect_answers_real_photos_with_boxes_inside_the_image(
    live_server: LiveServer, photos: list[tuple[str, bytes]]
) -> None:
    for name, data in photos:
        response = httpx.post(
            f"{live_server.url}/detect", files={"image": (name, data)}, data={"conf": "0.01"}, timeout=60
        )
        assert response.status_code == 200, response.text
        body = response.json()
        width, height = Image.open(io.BytesIO(data)).size
        assert body["model"]["name"] == "face-detector"
        for detection in body["detections"]:
            x1, y1, x2, y2 = detection["box"]
            assert 0 <= x1 <= x2 <= body["image"]["width"] and 0 <= y1 <= y2 <= body["image"]["height"]
            assert 0 <= detection["score"] <= 1 and detection["label"] == "face"
        assert {body["image"]["width"], body["image"]["height"]} == {width, height}


def test_classify_returns_probabilities_over_the_models_labels(
    live_server: LiveServer, photos: list[tuple[str, bytes]]
) -> None:
    labels = next(
        m["labels"]
        for m in httpx.get(f"{live_server.url}/models", timeout=HTTP_TIMEOUT).json()["models"]
        if m["role"] == "classifier"
    )
    for detect_faces in ("true", "false"):
        name, data = photos[0]
        response = httpx.post(
            f"{live_server.url}/classify",
            files={"image": (name, data)},
            data={"detect_faces": detect_faces},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["detector"] is None) == (detect_faces == "false")
        for face in body["faces"]:
            assert set(face["probabilities"]) == set(labels)
            assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
            assert face["probabilities"][face["label"]] == pytest.approx(face["score"])
        if detect_faces == "false":
            assert len(body["faces"]) == 1 and body["faces"][0]["box"] is None


def test_stylize_paints_with_gallery_styles_and_uploaded_styles(
    live_server: LiveServer, photos: list[tuple[str, bytes]]
) -> None:
    styles = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"]
    assert len(styles) >= 2
    painted = [s for s in styles if s["artist"]]  # the public-domain paintings, credited
    assert len(painted) >= 7 and all(s["year"] for s in painted)
    name, data = photos[0]
    response = httpx.post(
        f"{live_server.url}/stylize",
        files={"content": (name, data)},
        data={
            "style_name": [styles[0]["name"], styles[1]["name"]],
            "style_weights": ["0.5", "0.5"],
            "max_side": "256",
            "alpha": "0.8",
            "preserve_color": "true",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    painted = Image.open(io.BytesIO(response.content))
    assert max(painted.size) <= 256 and painted.mode == "RGB"
    style_bytes = httpx.get(live_server.url + styles[0]["url"], timeout=HTTP_TIMEOUT).content
    uploaded = httpx.post(
        f"{live_server.url}/stylize",
        files={"content": (name, data), "style": ("s.jpg", style_bytes)},
        data={"format": "jpeg", "max_side": "128"},
        timeout=120,
    )
    assert uploaded.status_code == 200 and uploaded.headers["content-type"] == "image/jpeg"
    assert uploaded.headers["x-model-name"]


def test_classical_nst_returns_an_image_within_its_bounds_and_its_step_count(
    live_server: LiveServer, photos: list[tuple[str, bytes]]
) -> None:
    name, data = photos[0]
    style = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    started = time.monotonic()
    response = httpx.post(
        f"{live_server.url}/stylize",
        files={"content": (name, data)},
        data={"style_name": style, "method": "nst", "max_side": "96", "max_seconds": "3"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert max(Image.open(io.BytesIO(response.content)).size) <= 96
    assert int(response.headers["x-nst-steps"]) >= 1
    assert time.monotonic() - started < 30  # the budget bounds the optimisation (plus decoding and queueing)


def test_an_nst_request_whose_client_left_stops_and_frees_the_model_for_the_next(
    live_server: LiveServer, photos: list[tuple[str, bytes]]
) -> None:
    """Before, the abandoned 30 s optimisation ran to its budget and the next request waited behind it."""
    name, data = photos[0]
    style = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    fields = {"style_name": style, "method": "nst", "max_side": "128", "max_seconds": "30"}
    built = httpx.Request("POST", f"{live_server.url}/stylize", files={"content": (name, data)}, data=fields)
    head = "".join(f"{k}: {v}\r\n" for k, v in built.headers.items() if k.lower() != "host")
    url = httpx.URL(live_server.url)
    with socket.create_connection((url.host, url.port)) as abandoned:
        abandoned.sendall(f"POST /stylize HTTP/1.1\r\nHost: {url.host}\r\n{head}\r\n".encode() + built.read())
        live_server.wait_slot_busy("nst")  # the optimisation is under way (however slow its start); the client gives up
    started = time.monotonic()
    live_server.wait_slot_idle("nst", timeout=60)  # one painting at a time (nst_queue_size): the stopped one ends
    response = httpx.post(
        f"{live_server.url}/stylize",
        files={"content": (name, data)},
        data=fields | {"max_seconds": "2"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 15  # not behind the abandoned one's 30 s
    metrics = httpx.get(f"{live_server.url}/metrics", timeout=HTTP_TIMEOUT).text
    assert f'deepcanvas_requests_total{{method="POST",route="{NST_ROUTE}",status="499"}}' in metrics  # NST's own


def test_models_lists_every_role_with_provenance(live_server: LiveServer) -> None:
    body = httpx.get(f"{live_server.url}/models", timeout=HTTP_TIMEOUT).json()
    roles = {m["role"]: m for m in body["models"]}
    assert set(roles) == {"detector", "classifier", "style", "gallery", "embedder"}
    assert roles["detector"]["architecture"] in {"yolov5s", "ultralight-rfb"} and roles["detector"]["labels"] == [
        "face"
    ]
    if roles["detector"]["architecture"] == "ultralight-rfb":  # ONNX only: never on torch
        assert roles["detector"]["engine"] in {"openvino", "onnxruntime"}
    assert all(m["provenance"] for m in roles.values())
    assert roles["style"]["options"] == ["manner"]  # the stable adain matches each painting's manner on request


@pytest.mark.parametrize("kind", sorted(bad_images()))
def test_bad_uploads_get_4xx_from_the_real_server(live_server: LiveServer, kind: str) -> None:
    data, statuses = bad_images()[kind]
    response = httpx.post(f"{live_server.url}/detect", files={"image": ("x.jpg", data, "image/jpeg")}, timeout=60)
    assert response.status_code in statuses, response.text
    assert response.json()["detail"]


def test_non_multipart_bodies_and_oversized_uploads_get_4xx(live_server: LiveServer) -> None:
    as_json = httpx.post(f"{live_server.url}/detect", json={"image": "aGVsbG8="}, timeout=HTTP_TIMEOUT)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    huge = httpx.post(
        f"{live_server.url}/detect",
        content=b"\0" * (21 * 1024 * 1024),
        headers={"content-type": "multipart/form-data; boundary=x"},
        timeout=HTTP_TIMEOUT,
    )
    assert huge.status_code == 413
    garbage = httpx.post(
        f"{live_server.url}/detect",
        content=b"--x\r\nnonsense",
        headers={"content-type": "multipart/form-data; boundary=x"},
        timeout=HTTP_TIMEOUT,
    )
    assert 400 <= garbage.status_code < 500
    assert httpx.get(f"{live_server.url}/readyz", timeout=HTTP_TIMEOUT).status_code == 200


def test_openapi_documents_every_endpoint_and_field(live_server: LiveServer) -> None:
    schema = httpx.get(f"{live_server.url}/openapi.json", timeout=HTTP_TIMEOUT).json()
    assert {"/detect", "/classify", "/stylize", "/styles", "/models", "/healthz", "/readyz"} <= set(schema["paths"])
    stylize = schema["paths"]["/stylize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][stylize.split("/")[-1]]["properties"]
    assert {
        "content",
        "style",
        "style_name",
        "style_weights",
        "alpha",
        "preserve_color",
        "method",
        "max_side",
        "format",
    } <= set(fields)
    assert all(f.get("description") for f in fields.values())


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "size, data, served",
    [
        ((300, 200), {"max_side": "100"}, (100, 67)),  # the network paints 96x64
        ((4000, 1100), {"max_side": "64"}, (64, 18)),  # the network paints 64x16 (rounded to 8), served at 18
        ((16, 16), {"method": "nst", "max_seconds": "2"}, (16, 16)),  # relu5_1 needs 32 px: painted at 32
        ((600, 40), {"method": "nst", "max_seconds": "2"}, (512, 34)),  # too thin for NST's half-size stage
    ],
)
def test_a_painting_keeps_the_photos_proportions_at_the_size_asked(
    live_server: LiveServer, size: tuple[int, int], data: dict[str, str], served: tuple[int, int]
) -> None:
    style = httpx.get(f"{live_server.url}/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    response = httpx.post(
        f"{live_server.url}/stylize",
        files={"content": ("p.png", _png(size))},
        data={"style_name": style, **data},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == served
