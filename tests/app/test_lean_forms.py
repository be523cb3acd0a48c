"""The lean form path (``app.fastpath``) answers exactly as FastAPI does, and only where it should."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from app import fastpath
from app.fastpath import FormFastPath, Part, compile_route, parse_form
from app.forms import FormRoute, form_checks
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.images import face_like_photo

PHOTO = face_like_photo(160, 120)


def body_of(files: dict[str, Any], data: dict[str, Any] | None = None) -> tuple[bytes, bytes]:
    """A multipart body as httpx writes it, and its boundary."""
    request = httpx.Request("POST", "http://t/", files=files, data=data)
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    return request.read(), boundary


# ---- the parser: plainly well-formed bodies only --------------------------------------------------------------


def test_a_body_as_a_client_library_writes_it_is_parsed_part_by_part() -> None:
    body, boundary = body_of({"image": ("p.jpg", PHOTO, "image/jpeg")}, {"conf": "0.5", "tile": "off"})
    parts = parse_form(body, boundary, 9)
    assert parts is not None and set(parts) == {"image", "conf", "tile"}
    assert parts["image"].filename == "p.jpg" and parts["image"].data == PHOTO
    assert (b"content-type", b"image/jpeg") in parts["image"].headers
    assert parts["conf"] == Part(None, parts["conf"].headers, b"0.5")


def test_a_photo_holding_crlf_and_dashes_is_kept_whole() -> None:
    data = b"\r\n--\r\n--not-the-boundary\r\n\r\n" + PHOTO
    body, boundary = body_of({"image": ("p.jpg", data)})
    parts = parse_form(body, boundary, 9)
    assert parts is not None and parts["image"].data == data


@pytest.mark.parametrize(
    "edit",
    [
        lambda body, b: body[: body.rfind(b"--" + b + b"--")],  # cut short: no closing delimiter
        lambda body, b: body.replace(b"--" + b + b"--", b"--" + b),  # a delimiter where the closing one belongs
        lambda body, b: b"preamble\r\n" + body,
        lambda body, b: body + b"epilogue",
        lambda body, b: body.replace(
            b"--" + b + b'\r\nContent-Disposition: form-data; name="conf"',
            b"--" + b + b'  \r\nContent-Disposition: form-data; name="conf"',
        ),
        lambda body, b: body.replace(b'name="conf"', b'name="co\\"nf"'),  # an escaped quote
        lambda body, b: body.replace(b'name="conf"', b"name=conf"),  # unquoted
        lambda body, b: body.replace(b'filename="p.jpg"', b"filename*=UTF-8''p.jpg"),
        lambda body, b: body.replace(b'name="conf"', b'name="image"'),  # a name twice
        lambda body, b: body.replace(b'name="conf"', b'name="conf"; name="iou"'),  # a parameter twice
        lambda body, b: body.replace(b'form-data; name="conf"', b'attachment; name="conf"'),
        lambda body, b: body.replace(
            b'Content-Disposition: form-data; name="conf"\r\n\r\n', b'Content-Disposition: form-data; name="conf"\r\n'
        ),
        # python-multipart refuses these (400) or reads them otherwise: the lean path leaves them to it
        lambda body, b: body.replace(b'name="conf"', b'name="conf"' + b"".join(b"\r\nX-%d: a" % i for i in range(8))),
        lambda body, b: body.replace(b'name="conf"', b'name="conf"\r\nX-Long: ' + b"a" * 5000),
        lambda body, b: body.replace(b'name="conf"', b'name="conf"\r\nX(a): b'),
        lambda body, b: body.replace(b'name="conf"', b'name="conf"\r\nX-A: a\rb'),
        lambda body, b: body.replace(b'form-data; name="conf"', b'form-data;\nname="conf"'),
        lambda body, b: body.replace(b'form-data; name="conf"', b'form-data; name="conf"\x0b'),
    ],
)
def test_anything_less_plain_is_left_to_fastapi(edit: Any) -> None:
    body, boundary = body_of({"image": ("p.jpg", PHOTO)}, {"conf": "0.5"})
    assert parse_form(body, boundary, 9) is not None
    assert parse_form(edit(body, boundary), boundary, 9) is None


def test_no_boundary_no_parse() -> None:
    body, _ = body_of({"image": ("p.jpg", PHOTO)})
    assert parse_form(body, b"", 9) is None


def test_a_header_line_that_fails_fails_at_once() -> None:
    body, boundary = body_of({"image": ("p.jpg", PHOTO)})
    bad = body.replace(b'filename="p.jpg"', b'filename="p.jpg"\r\nX:' + b" " * 1000 + b"\x01")
    started = time.perf_counter()
    assert parse_form(bad, boundary, 9) is None
    # A lazy pattern between two runs of blanks took over a second on this line (cubic backtracking); a
    # possessive one takes microseconds. The bound is two orders of magnitude above that, far below the former.
    assert time.perf_counter() - started < 0.1


def test_a_long_boundary_or_more_parts_than_the_route_has_fields_is_left_to_fastapi() -> None:
    long = b"x" * 71
    body = b"--" + long + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--' + long + b"--\r\n"
    assert parse_form(body, long, 9) is None and parse_form(body.replace(long, long[:70]), long[:70], 9) is not None
    many, boundary = body_of({"image": ("p.jpg", PHOTO)}, {f"f{i}": "1" for i in range(9)})
    assert parse_form(many, boundary, 10) is not None
    assert parse_form(many, boundary, 9) is None  # counted, not split: a body of 350,000 fields costs one scan


# ---- which routes it takes --------------------------------------------------------------------------------------


@pytest.fixture
def fast_client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path / "fast") as client:
        yield wait_ready(client)


@pytest.fixture
def plain_client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path / "plain", lean_forms=False) as client:
        yield wait_ready(client)


def test_both_photo_routes_compile_on_the_service(fast_client: TestClient) -> None:
    app = fast_client.app
    for path in ("/classify", "/detect"):
        compiled = compile_route(app, path)
        assert compiled is not None, path
        assert {name for name, _ in compiled.dependencies} == {"manager", "params", "limits"}
        assert compiled.fields["image"].name == "image"


def _app_with(route: Any) -> FastAPI:
    app = FastAPI(dependencies=[Depends(form_checks)])
    app.router.route_class = FormRoute
    app.post("/x")(route)
    return app


def test_a_route_of_another_shape_is_left_to_fastapi() -> None:
    def sync_dependency() -> int:  # FastAPI runs a plain def in its thread pool: not a lean path's call
        return 1

    async def plain(image: UploadFile = File(), conf: float = Form(0.5)) -> dict[str, float]:
        return {"conf": conf}

    async def with_query(limit: int, image: UploadFile = File()) -> dict[str, int]:
        return {"limit": limit}

    async def with_sync_dependency(image: UploadFile = File(), one: int = Depends(sync_dependency)) -> dict[str, int]:
        return {"one": one}

    async def without_file(conf: float = Form(0.5)) -> dict[str, float]:
        return {"conf": conf}

    assert compile_route(_app_with(plain), "/x") is not None
    assert compile_route(_app_with(plain), "/y") is None
    for route in (with_query, with_sync_dependency, without_file):
        assert compile_route(_app_with(route), "/x") is None, route.__name__


async def _plain(image: UploadFile = File(), conf: float = Form(0.5)) -> dict[str, float]:
    return {"conf": conf}


def test_form_limits_anywhere_keep_a_route_off_the_lean_path() -> None:
    limits = {"max_part_size": 2}
    app = FastAPI(dependencies=[Depends(form_checks)])
    app.post("/x")(_plain)
    assert compile_route(app, "/x") is not None
    app.post("/y", form_limits=limits)(_plain)  # type: ignore[arg-type]
    assert compile_route(app, "/x") is None  # conservative: a limit anywhere leaves every route to FastAPI
    for where in ("app", "router", "include"):
        app = FastAPI(dependencies=[Depends(form_checks)], **({"form_limits": limits} if where == "app" else {}))
        router = APIRouter(route_class=FormRoute, **({"form_limits": limits} if where == "router" else {}))
        router.post("/x")(_plain)
        app.include_router(router, **({"form_limits": limits} if where == "include" else {}))  # type: ignore[arg-type]
        assert compile_route(app, "/x") is None, where


def test_a_route_shadowed_by_an_earlier_one_is_left_to_fastapi() -> None:
    async def caught(name: str) -> dict[str, str]:
        return {"caught": name}

    app = FastAPI(dependencies=[Depends(form_checks)])
    app.post("/{name}")(caught)
    app.post("/x")(_plain)
    assert compile_route(app, "/x") is None


def test_a_default_that_asks_to_be_validated_is() -> None:
    async def validated(image: UploadFile = File(), conf: float = Form("0.5", validate_default=True)) -> dict:  # type: ignore[type-arg]
        return {"conf": conf}

    compiled = compile_route(_app_with(validated), "/x")
    assert compiled is not None
    arguments = compiled.arguments({"image": Part("p.jpg", [], PHOTO)})
    assert arguments is not None and arguments["conf"] == 0.5 and isinstance(arguments["conf"], float)


class Refused(Exception):
    pass


class AsyncHandler:  # a handler object with an async __call__, which Starlette awaits
    async def __call__(self, request: Any, error: Exception) -> JSONResponse:
        return JSONResponse({"refused": str(error)}, status_code=409)


@pytest.mark.parametrize("handler", [AsyncHandler(), lambda request, error: JSONResponse({"sync": 1}, status_code=418)])
def test_a_handler_is_called_as_starlette_calls_it(handler: Any) -> None:
    async def refusing(image: UploadFile = File()) -> dict[str, int]:
        raise Refused("no")

    answers = []
    for paths in (frozenset({"/x"}), frozenset()):
        app = _app_with(refusing)
        app.add_exception_handler(Refused, handler)
        app.add_middleware(FormFastPath, paths=paths)
        with TestClient(app) as client:
            response = client.post("/x", files={"image": ("p.jpg", PHOTO)})
            answers.append(_answer(response))
        assert compile_route(app, "/x") is not None
    assert answers[0][0] in (409, 418) and answers[0] == answers[1], answers


def test_what_include_router_adds_keeps_a_route_off_the_lean_path() -> None:
    async def deny() -> None:
        raise HTTPException(403)

    async def plain(image: UploadFile = File(), conf: float = Form(0.5)) -> dict[str, float]:
        return {"conf": conf}

    for extra in ({"dependencies": [Depends(deny)]}, {}):
        router = APIRouter(route_class=FormRoute)
        router.post("/x")(plain)
        app = FastAPI(dependencies=[Depends(form_checks)])
        app.include_router(router, **extra)  # type: ignore[arg-type]
        assert (compile_route(app, "/x") is None) == bool(extra)


# ---- the same answers, and served where it should ----------------------------------------------------------------

REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any] | None, bool]] = [
    # path, files, data, whether the lean path serves it
    ("/detect", {"image": ("p.jpg", PHOTO)}, None, True),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": "0.1", "iou": "0.3", "max_det": "2", "tile": "off"}, True),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"min_size": "1e1", "landmarks": "false", "imgsz": "320"}, True),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": "2"}, False),  # out of range: FastAPI's 422
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": "nan"}, False),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"tile": "sometimes"}, False),
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"conf": ""}, False),  # empty: FastAPI's default
    ("/detect", {"image": ("p.jpg", PHOTO)}, {"unknown": "1"}, False),
    ("/detect", {"image": (None, "p.jpg")}, None, False),  # the photo as a text field
    ("/detect", {"image": ("", b"")}, None, False),  # a browser's empty file input
    ("/detect", {"other": ("p.jpg", PHOTO)}, None, False),
    ("/detect", {"image": ("p.jpg", b"not an image")}, None, True),  # the route's own 4xx, through its handler
    ("/detect", {"image": ("p.jpg", PHOTO[: len(PHOTO) // 3])}, None, True),  # a truncated JPEG
    ("/classify", {"image": ("p.jpg", PHOTO)}, None, True),
    ("/classify", {"image": ("p.jpg", PHOTO)}, {"detect_faces": "false"}, True),
    ("/classify", {"image": ("p.jpg", PHOTO)}, {"detect_faces": "0", "min_score": "0.99"}, True),
    ("/classify", {"image": ("p.jpg", PHOTO)}, {"detect_faces": "perhaps"}, False),
    ("/classify", {"image": ("p.jpg", PHOTO)}, {"min_score": "1.5"}, False),
    ("/classify", {"image": ("p.jpg", face_like_photo(8, 8))}, {"detect_faces": "false"}, True),  # too small: 4xx
]


def _answer(response: httpx.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("content-type")


@pytest.mark.parametrize("path, files, data, served", REQUESTS)
def test_the_same_answer_as_fastapi_gives(
    fast_client: TestClient,
    plain_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    files: dict[str, Any],
    data: dict[str, Any] | None,
    served: bool,
) -> None:
    calls: list[str] = []
    respond = fastpath.FastRoute.respond

    async def counted(self: fastpath.FastRoute, request: Any, values: dict[str, Any]) -> Any:
        calls.append(request.url.path)
        return await respond(self, request, values)

    monkeypatch.setattr(fastpath.FastRoute, "respond", counted)
    lean = fast_client.post(path, files=files, data=data)
    assert calls == ([path] if served else [])
    plain = plain_client.post(path, files=files, data=data)
    assert calls == ([path] if served else [])  # the plain service never takes it
    assert _answer(lean) == _answer(plain), (lean.text, plain.text)
    assert lean.headers.get("x-request-id") and lean.headers.get("server-timing")


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; charset=cp037; boundary={}", "  multipart/form-data; boundary={}"]
)
def test_a_content_type_that_says_more_is_left_to_fastapi(
    fast_client: TestClient, plain_client: TestClient, monkeypatch: pytest.MonkeyPatch, content_type: str
) -> None:
    body, boundary = body_of({"image": ("p.jpg", PHOTO)})
    calls: list[object] = []
    monkeypatch.setattr(fastpath.FastRoute, "arguments", lambda self, parts: calls.append(parts))
    headers = {"Content-Type": content_type.format(boundary.decode())}
    lean, plain = (client.post("/detect", content=body, headers=headers) for client in (fast_client, plain_client))
    assert calls == [] and _answer(lean) == _answer(plain), (lean.text, plain.text)


def test_bodies_past_the_lean_paths_bounds_are_read_by_fastapi(
    fast_client: TestClient, plain_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body, boundary = body_of({"image": ("p.jpg", PHOTO)})
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bound meets the body while it is read
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    expected = _answer(plain_client.post("/detect", content=body, headers=headers))
    assert expected[0] == 200
    calls: list[object] = []
    arguments = fastpath.FastRoute.arguments
    monkeypatch.setattr(
        fastpath.FastRoute, "arguments", lambda self, parts: calls.append(parts) or arguments(self, parts)
    )
    with monkeypatch.context() as patch:
        patch.setattr(fastpath, "MAX_BODY_BYTES", len(body) - 1)
        assert _answer(fast_client.post("/detect", content=chunks(), headers=headers)) == expected
        assert _answer(fast_client.post("/detect", content=body, headers=headers)) == expected  # declared: not read
    assert calls == []
    assert _answer(fast_client.post("/detect", content=chunks(), headers=headers)) == expected and len(calls) == 1


@pytest.mark.parametrize("bound, value", [("MAX_MESSAGES", 3), ("MAX_BODY_BYTES", 10)])
def test_reading_stops_at_a_bound_and_fastapi_gets_every_message_in_order(
    monkeypatch: pytest.MonkeyPatch, bound: str, value: int
) -> None:
    monkeypatch.setattr(fastpath, bound, value)
    messages = [{"type": "http.request", "body": b"%05d" % i, "more_body": i < 9} for i in range(10)]
    source = iter(messages)

    async def receive() -> dict[str, object]:
        return next(source)

    async def run() -> tuple[bool, list[object]]:
        received, complete, failure = await fastpath._read_body(receive)
        assert failure is None
        replayed = fastpath._replay(received, failure, receive)
        return complete, [await replayed() for _ in messages]

    complete, seen = asyncio.run(run())
    assert not complete and seen == messages


def test_an_error_while_reading_reaches_fastapi_after_what_was_read() -> None:
    first = {"type": "http.request", "body": b"abc", "more_body": True}
    calls = 0

    async def receive() -> dict[str, object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return first
        raise HTTPException(413, "too large")

    async def run() -> None:
        received, complete, failure = await fastpath._read_body(receive)
        assert received == [first] and not complete and isinstance(failure, HTTPException)
        replayed = fastpath._replay(received, failure, receive)
        assert await replayed() == first
        with pytest.raises(HTTPException):
            await replayed()

    asyncio.run(run())


@pytest.mark.parametrize("fails", ["raises", "answers what its model refuses"])
def test_a_bug_is_a_500_after_one_run_answered_as_fastapi_answers_it(
    fast_client: TestClient, plain_client: TestClient, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    from app import services

    calls: list[object] = []

    async def broken(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if fails == "raises":
            raise RuntimeError("a bug")
        return {"nonsense": 1}

    monkeypatch.setattr(services, "detect", broken)
    answers = []
    for client in (fast_client, plain_client):
        client.raise_server_exceptions = False  # type: ignore[attr-defined]
        response = client.post("/detect", files={"image": ("p.jpg", PHOTO)})
        assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]  # one, not two
        body = response.json()
        answers.append((response.status_code, {k: v for k, v in body.items() if k != "request_id"}))
    assert answers[0][0] == 500 and answers[0] == answers[1]
    assert len(calls) == 2  # once on each service: the lean path does not run it again


def test_a_repeated_photo_is_refused_as_fastapi_refuses_it(fast_client: TestClient, plain_client: TestClient) -> None:
    files = [("image", ("a.jpg", PHOTO)), ("image", ("b.jpg", PHOTO))]
    lean, plain = fast_client.post("/detect", files=files), plain_client.post("/detect", files=files)
    assert lean.status_code == 422 and _answer(lean) == _answer(plain)


def test_a_form_field_sent_in_the_query_is_refused_on_both_paths(
    fast_client: TestClient, plain_client: TestClient
) -> None:
    """/detect?conf=0.9 was served at the default conf: FastAPI reads form fields from the body only. A query
    that names none of the route's form fields (a cache buster) still goes through."""
    for client in (fast_client, plain_client):
        refused = client.post("/detect?conf=0.9&iou=0.3", files={"image": ("p.jpg", PHOTO)})
        assert refused.status_code == 422, refused.text
        assert (
            refused.json()["detail"]
            == "conf, iou: a form field, sent in the query; send it in the multipart/form-data body"
        )
        assert client.post("/detect?_=123", files={"image": ("p.jpg", PHOTO)}).status_code == 200
        assert client.post("/detect", files={"image": ("p.jpg", PHOTO)}, data={"conf": "0.9"}).status_code == 200


def test_the_metrics_name_the_route_either_way(fast_client: TestClient) -> None:
    assert fast_client.post("/detect", files={"image": ("p.jpg", PHOTO)}).status_code == 200
    metrics = fast_client.get("/metrics").text
    assert 'deepcanvas_requests_total{method="POST",route="/detect",status="200"}' in metrics


def test_dependency_overrides_send_every_request_to_fastapi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.deps import get_params

    calls: list[object] = []
    respond = fastpath.FastRoute.respond

    async def counted(self: fastpath.FastRoute, request: Any, values: dict[str, Any]) -> Any:
        calls.append(request)
        return await respond(self, request, values)

    monkeypatch.setattr(fastpath.FastRoute, "respond", counted)
    with fake_app_client(tmp_path) as client:
        wait_ready(client)
        real = client.app.state.params.params  # type: ignore[attr-defined]

        async def overridden() -> Any:
            return real.model_copy(update={"min_side": 400})

        client.app.dependency_overrides[get_params] = overridden  # type: ignore[attr-defined]
        response = client.post("/detect", files={"image": ("p.jpg", PHOTO)})
    assert response.status_code == 422 and calls == []  # the override applied: the photo is under 400 px


def test_a_body_over_the_limit_is_refused_as_before(tmp_path: Path) -> None:
    big = face_like_photo(640, 480)
    body, boundary = body_of({"image": ("p.jpg", big)})
    assert len(body) > 2048

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit meets the body while it is read
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    answers = []
    for lean in (True, False):
        with fake_app_client(tmp_path / str(lean), max_upload_bytes=2048, lean_forms=lean) as client:
            wait_ready(client)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
            answers.append(_answer(client.post("/detect", content=chunks(), headers=headers)))
    assert answers[0][0] == 413 and answers[0] == answers[1], answers


def test_the_served_paths_are_the_settings(tmp_path: Path) -> None:
    with fake_app_client(tmp_path, lean_forms=False) as client:
        stack: Any = client.app.build_middleware_stack()  # type: ignore[attr-defined]
        while not isinstance(stack, FormFastPath):
            stack = stack.app
        assert stack.paths == frozenset()
    assert {"/classify", "/detect"} == fastpath.FAST_FORM_PATHS
