"""Prometheus metrics, EMF documents, JSON request logs and request ids (in-process)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry import NST_ROUTE, JsonFormatter, label_route
from tests.support.app_client import fake_app_client, wait_ready
from tests.support.images import face_like_photo

PHOTO = face_like_photo(160, 120)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with fake_app_client(tmp_path) as client:
        yield wait_ready(client)


def test_metrics_expose_requests_latency_inference_and_model_state(client: TestClient) -> None:
    assert client.post("/detect", files={"image": ("p.jpg", PHOTO)}).status_code == 200
    assert client.post("/detect", files={"image": ("p.jpg", b"nope")}).status_code == 415
    text = client.get("/metrics").text
    assert 'deepcanvas_requests_total{method="POST",route="/detect",status="200"} 1.0' in text
    assert 'deepcanvas_requests_total{method="POST",route="/detect",status="415"} 1.0' in text
    assert 'deepcanvas_request_duration_seconds_count{route="/detect"} 2.0' in text
    assert 'deepcanvas_inference_duration_seconds_count{model="face-detector",slot="detector",version="v1"} 1.0' in text
    assert 'deepcanvas_queue_depth{model="face-detector",slot="detector"} 0.0' in text
    assert 'deepcanvas_model_info{model="face-gender",slot="classifier",task="classify",version="v1"} 1.0' in text
    assert 'deepcanvas_model_load_seconds{model="adain",slot="nst",version="v1"}' in text
    assert "deepcanvas_inflight_requests 1.0" in text  # the scrape itself
    assert "deepcanvas_params_version 0.0" in text


def _series(text: str) -> dict[str, list[dict[str, str]]]:
    """Each metric family's samples' label sets (a histogram's buckets: ``le`` too), from what a scraper reads."""
    return {
        family.name: [sample.labels | {"__name__": sample.name} for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_per_model_metrics_name_the_model_and_its_slot_and_join_on_both(client: TestClient) -> None:
    """adain feeds two slots (style, nst): ``model_info`` had two identical series for it, and ``queue_depth``
    put the slot's name in its ``model`` label ("style", "nst"), so the two never joined on ``model``."""
    assert client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data={"style_name": "red"}).status_code == 200
    series = _series(client.get("/metrics").text)
    for name, labels in series.items():  # a scraper rejects a scrape with one series twice
        assert len({tuple(sorted(s.items())) for s in labels}) == len(labels), name
    info = {(s["model"], s["slot"]) for s in series["deepcanvas_model_info"]}
    assert {("adain", "style"), ("adain", "nst"), ("face-detector", "detector")} <= info
    assert {(s["model"], s["slot"]) for s in series["deepcanvas_queue_depth"]} == info
    assert {(s["model"], s["slot"]) for s in series["deepcanvas_model_load_seconds"]} == info
    ran = {(s["model"], s["slot"]) for s in series["deepcanvas_inference_duration_seconds"]}
    assert ran == {("adain", "style")}  # the feed-forward AdaIN call, apart from NST's


def test_unknown_paths_share_one_route_label(client: TestClient) -> None:
    for path in ("/a", "/b", "/c"):
        assert client.get(path).status_code == 404
    assert 'deepcanvas_requests_total{method="GET",route="unmatched",status="404"} 3.0' in client.get("/metrics").text


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces;" + "x" * 200})
    assert len(generated.headers["x-request-id"]) == 32


def _server_timing(header: str) -> list[tuple[str, str | None, float]]:
    entries = []
    for part in header.split(", "):
        name, *params = part.split(";")
        fields = dict(p.split("=", 1) for p in params)
        entries.append((name, fields.get("desc", "").strip('"') or None, float(fields["dur"])))
    return entries


def test_server_timing_says_where_a_requests_time_went(client: TestClient) -> None:
    response = client.post("/classify", files={"image": ("p.jpg", PHOTO)})
    assert response.status_code == 200
    entries = _server_timing(response.headers["server-timing"])
    names = [name for name, _, _ in entries]
    # one upload decoded; the detector, then the classifier, each waited for and run; total last
    assert names == ["decode", "queue", "queue", "infer", "infer", "total"]
    assert [desc for name, desc, _ in entries if name == "infer"] == ["face-detector/v1", "face-gender/v1"]
    total = entries[-1][2]
    assert all(duration >= 0 for _, _, duration in entries) and total > 0
    assert sum(duration for name, _, duration in entries if name != "total") <= total
    painted = client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data={"style_name": "red"})
    assert painted.status_code == 200, painted.text
    steps = [name for name, _, _ in _server_timing(painted.headers["server-timing"])]
    assert steps == ["decode", "queue", "encode", "infer", "total"]  # the painted image's PNG is timed too
    health = _server_timing(client.get("/healthz").headers["server-timing"])
    assert [name for name, _, _ in health] == ["total"]  # nothing decoded, no model


def test_a_large_photo_decoded_whole_is_averaged_down_for_the_detector_and_says_so(client: TestClient) -> None:
    from tests.support.images import face_like_photo

    large = face_like_photo(320, 240, "PNG")  # the fake detector reads 64 px: its view loses nothing at half size
    response = client.post("/classify", files={"image": ("p.png", large)})  # a PNG has no DCT scales
    assert response.status_code == 200
    names = [name for name, _, _ in _server_timing(response.headers["server-timing"])]
    assert names == ["decode", "reduce", "queue", "queue", "infer", "infer", "total"]


def test_a_large_jpeg_decodes_smaller_and_whole_only_for_faces_too_small_in_it(client: TestClient) -> None:
    from tests.support.images import face_like_photo

    # This store's classifier records no input side: the crops need the whole photo, decoded second.
    response = client.post("/classify", files={"image": ("p.jpg", face_like_photo(320, 240))})
    assert response.status_code == 200
    names = [name for name, _, _ in _server_timing(response.headers["server-timing"])]
    assert names == ["decode", "queue", "decode", "queue", "infer", "infer", "total"]  # no "reduce": a DCT scale


def test_each_request_logs_one_json_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="deepcanvas.access"):
        client.post("/detect", files={"image": ("p.jpg", PHOTO)}, headers={"X-Request-ID": "req-1"})
    [record] = [r for r in caplog.records if r.name == "deepcanvas.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1" and line["route"] == "/detect" and line["status"] == 200
    assert line["models"] == ["face-detector/v1"] and line["duration_ms"] > 0


def test_emf_documents_carry_latency_and_inference_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_app_client(tmp_path, emf_enabled=True, emf_namespace="DeepCanvasTest") as client:
        wait_ready(client)
        capsys.readouterr()
        assert client.post("/detect", files={"image": ("p.jpg", PHOTO)}).status_code == 200
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    request = next(d for d in documents if d.get("route") == "/detect")
    directive = request["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "DeepCanvasTest"
    assert directive["Dimensions"] == [["service", "route"]]
    assert {m["Name"] for m in directive["Metrics"]} >= {"Latency", "Requests", "Errors"}
    assert request["Requests"] == 1 and request["Errors"] == 0 and request["Latency"] > 0
    inference = next(d for d in documents if "InferenceTime" in d)
    assert (inference["model"], inference["version"], inference["service"]) == ("face-detector", "v1", "deepcanvas")
    assert inference["slot"] == "detector"
    assert inference["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "model", "slot", "version"]]


@pytest.mark.parametrize("spelling", ["/%6detrics", "/%6D%65trics", "/metric%73"])
def test_metrics_answer_only_at_the_plain_path_the_balancer_rule_matches(client: TestClient, spelling: str) -> None:
    """The server decodes %-escapes before routing; the rule hiding /metrics matches the path as sent."""
    assert client.get("/metrics").status_code == 200
    assert client.get(spelling).status_code == 404


def test_nst_paintings_are_counted_apart_from_adain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """method=nst paints for up to 55 s under the same route as AdaIN's milliseconds: one /stylize p99 over both
    raised the CloudWatch latency alarm (which watches /stylize) on a few paintings a minute."""
    with fake_app_client(tmp_path, emf_enabled=True) as client:
        wait_ready(client)
        capsys.readouterr()
        for method in ("adain", "nst"):
            data = {"style_name": "red", "method": method}
            assert client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=data).status_code == 200
        refused = {"style_name": ["red", "red"], "method": "nst"}  # before any inference: still NST's
        assert client.post("/stylize", files={"content": ("p.jpg", PHOTO)}, data=refused).status_code == 422
        text = client.get("/metrics").text
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    routes = [d["route"] for d in documents if "Latency" in d and d["route"] != "/metrics"]
    assert routes == ["/stylize", NST_ROUTE, NST_ROUTE]
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "deepcanvas_requests"
        for s in family.samples
        if s.name == "deepcanvas_requests_total"
    }
    assert counts[("/stylize", "200")] == 1
    assert (counts[(NST_ROUTE, "200")], counts[(NST_ROUTE, "422")]) == (1, 1)
    assert f'deepcanvas_request_duration_seconds_count{{route="{NST_ROUTE}"}} 2.0' in text


def test_a_route_label_outside_a_request_is_ignored() -> None:
    label_route(NST_ROUTE)  # no request being served: nothing to label, and no error
