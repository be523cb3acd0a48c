"""The load generator of ``deepcanvas bench``: its raw keep-alive client against the real server.

It replays pre-encoded requests, so it must count exactly what the server answered, tell errors from
successes, and read both Content-Length and chunked bodies.
"""

from __future__ import annotations

import asyncio
import re
import select
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from app.bench import block_sizes, http_calls, median_steps, server_steps
from app.loadbench import (
    SHIPPED_DEFAULTS,
    Samples,
    alternate,
    awake,
    block_order,
    cpu_seconds,
    drive,
    process_tree,
    read_response,
    replay,
    request_for,
    resume,
    settle,
    stop,
    summarize,
    suspend,
)
from app.settings import Settings
from tests.support.servers import HTTP_TIMEOUT, LiveServer

pytestmark = pytest.mark.e2e


def served(server: LiveServer, route: str, status: int) -> float:
    pattern = rf'deepcanvas_requests_total\{{method="POST",route="{route}",status="{status}"\}} ([0-9.]+)'
    found = re.search(pattern, httpx.get(server.url + "/metrics", timeout=HTTP_TIMEOUT).text)
    return float(found.group(1)) if found else 0.0


def test_the_load_client_counts_every_answer_the_server_gave(
    live_server: LiveServer, sample_photo_bytes: bytes
) -> None:
    before = served(live_server, "/classify", 200)
    request = request_for("/classify", sample_photo_bytes, "unused", 64)
    # 3 s (not 1.5): more than ten answers also when a loaded machine makes each take a few hundred ms
    result = asyncio.run(drive(live_server.url, "/classify", request, clients=3, seconds=3.0))
    assert result.errors == 0 and result.requests > 10
    assert served(live_server, "/classify", 200) - before == result.requests
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.throughput_rps == pytest.approx(result.requests / 3.0, rel=0.5)


def test_answers_other_than_200_are_errors_not_latencies(live_server: LiveServer) -> None:
    before = served(live_server, "/detect", 415)
    request = {"files": {"image": ("notes.txt", b"plain text, not an image")}}
    result = asyncio.run(drive(live_server.url, "/detect", request, clients=2, seconds=0.5))
    assert result.requests == 0 and result.errors > 0
    assert served(live_server, "/detect", 415) - before == result.errors


def test_a_stylized_image_body_is_read_to_its_end_before_the_next_request(
    live_server: LiveServer, sample_photo_bytes: bytes
) -> None:
    style = httpx.get(live_server.url + "/styles", timeout=HTTP_TIMEOUT).json()["styles"][0]["name"]
    request = request_for("/stylize", sample_photo_bytes, style, 64)
    # a second request is sent only if the first answered inside the window: 3 s, not 1, for a loaded machine
    result = asyncio.run(drive(live_server.url, "/stylize", request, clients=1, seconds=3.0))
    assert result.errors == 0 and result.requests >= 2  # the second answer parsed: the first body was consumed


def test_replay_times_one_request_after_another_and_fails_on_an_error(
    live_server: LiveServer, sample_photo_bytes: bytes
) -> None:
    before = served(live_server, "/classify", 200)
    request = request_for("/classify", sample_photo_bytes, "unused", 64)
    samples = asyncio.run(replay(live_server.url, "/classify", request, repeats=5, warmup=2))
    assert len(samples) == 5 and all(s > 0 for s in samples)
    assert served(live_server, "/classify", 200) - before == 7
    with pytest.raises(RuntimeError, match="415"):
        asyncio.run(replay(live_server.url, "/detect", {"files": {"image": ("n.txt", b"text")}}, repeats=1))


@pytest.mark.parametrize(
    ("raw", "status", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", 200, True),
        (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 503, False),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\n\r\n", 200, True),
    ],
    ids=["content-length", "close", "chunked"],
)
def test_responses_are_framed_by_length_or_chunks(raw: bytes, status: int, keep_alive: bool) -> None:
    async def parse() -> tuple[tuple[int, bool], bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(raw + b"NEXT")
        reader.feed_eof()
        return await read_response(reader), await reader.read()

    assert asyncio.run(parse()) == ((status, keep_alive), b"NEXT")


def test_the_latency_bench_splits_the_servers_time_from_its_server_timing(
    live_server: LiveServer, sample_photo_bytes: bytes
) -> None:
    headers: dict[str, list[str]] = {}
    call = http_calls(live_server.url, sample_photo_bytes, "unused", 64, headers)["/classify"]
    client_ms = []
    for _ in range(3):
        started = time.perf_counter()
        call()
        client_ms.append((time.perf_counter() - started) * 1000)
    assert set(median_steps(headers["/classify"])) == {"decode", "queue", "infer", "total", "framework"}
    steps = median_steps(headers["/classify"], client_ms)
    assert set(steps) == {"decode", "queue", "infer", "total", "framework", "outside"}
    assert steps["outside"] > 0  # each call's round trip holds its server total: paired, it cannot go below
    assert steps["infer"] > 0 and steps["decode"] > 0 and steps["total"] > steps["infer"]
    for header in headers["/classify"]:  # the steps of one request follow one another inside its total
        parsed = server_steps(header)
        assert sum(v for k, v in parsed.items() if k != "total") <= parsed["total"] + 0.05  # 0.01 ms rounding


def test_the_latency_bench_splits_its_calls_into_alternating_blocks() -> None:
    assert block_sizes(60, 5) == [12] * 5
    assert block_sizes(7, 5) == [2, 2, 1, 1, 1] and sum(block_sizes(31, 5)) == 31
    assert block_sizes(3, 5) == [1, 1, 1]  # never an empty block


def test_server_timing_values_parse_as_a_browser_would() -> None:
    value = 'decode;dur=0.5, infer;desc="a/v1";dur=2, infer;desc="b/v1";dur=1.25, cache, total;dur=5'
    assert server_steps(value) == {"decode": 0.5, "infer": 3.25, "total": 5.0}  # no dur: not a duration


def test_settle_waits_until_the_server_and_its_children_stop_using_the_cpu() -> None:
    # The child says when it starts burning (its parent's stdout): on a loaded machine two interpreters may take
    # longer to start than any fixed pause.
    burn = "import time\nprint('burning', flush=True)\nend = time.time() + 1.5\nwhile time.time() < end: pass\n"
    burn += "time.sleep(30)"
    busy = f"import subprocess, sys, time\nchild = subprocess.Popen([sys.executable, '-c', {burn!r}])\ntime.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and select.select([process.stdout], [], [], 60)[0], "the child never started"
        assert process.stdout.readline() == b"burning\n"
        assert 1.0 <= settle(process.pid, interval_s=0.25, limit_s=10) < 5  # the child's work counts
        # quiet now: one interval of 1 s (under 2 s: a second interval would mean it saw work that is not there)
        assert settle(process.pid, interval_s=1.0, limit_s=10) < 1.9
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()


def test_blocks_merge_into_one_point_over_their_summed_time() -> None:
    blocks = [Samples([1.0, 2.0, 3.0], 0, 1.0), Samples([4.0], 1, 1.0)]
    result = summarize("deepcanvas", "/detect", 16, blocks)
    assert (result.requests, result.errors, result.throughput_rps) == (4, 1, 2.0)
    assert (result.p50_ms, result.p99_ms) == (2.5, 4.0)


def test_the_sides_take_turns_and_neither_always_goes_first() -> None:
    sides = ("litserve", "deepcanvas")
    assert [block_order(sides, block) for block in range(3)] == [sides, sides[::-1], sides]


def test_alternating_blocks_load_each_side_and_see_what_the_idle_one_used(
    live_server: LiveServer, sample_photo_bytes: bytes
) -> None:
    # Both names point at one server, not paused: while "second" is measured, "first" (the same process) is
    # anything but idle, and the idle side's CPU must say so.
    before = served(live_server, "/classify", 200)
    request = request_for("/classify", sample_photo_bytes, "unused", 64)
    bases = {"first": live_server.url, "second": live_server.url}
    pids = dict.fromkeys(bases, live_server.process.pid)
    cpu_before = cpu_seconds(live_server.process.pid)
    results, idle = alternate(bases, pids, "/classify", request, clients=2, seconds=4.0, blocks=2, pause=False)
    cpu_used = cpu_seconds(live_server.process.pid) - cpu_before
    assert [r.side for r in results] == ["first", "second"]
    assert all(r.errors == 0 and r.requests > 5 for r in results)
    assert served(live_server, "/classify", 200) - before == sum(r.requests for r in results)
    # Each side's idle share times the other's measured time is the server's CPU during the other's blocks: the two
    # add up to what the server used (less the moments between blocks), however much CPU a loaded machine gave it.
    elapsed = {r.side: r.requests / r.throughput_rps for r in results}
    accounted = idle["first"] * elapsed["second"] + idle["second"] * elapsed["first"]
    assert min(idle.values()) > 0 and 0.7 * cpu_used <= accounted <= cpu_used + 0.05, (idle, elapsed, cpu_used)


def test_a_suspended_side_and_the_processes_it_started_take_no_cpu_until_awake() -> None:
    # A parent and a child that both spin, like a server and its inference worker.
    spin = (
        "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'while True: pass']); exec('while True: pass')"
    )
    process = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(process_tree(process.pid)) == 2
        suspend(process.pid)
        before = cpu_seconds(process.pid)
        time.sleep(0.5)
        assert cpu_seconds(process.pid) - before < 0.02
        with awake(process.pid, pause_s=0.0):
            # both spin again: each gains CPU (how fast depends on what else the machine runs, so no rate)
            tree = process_tree(process.pid)
            start = [sum(p.cpu_times()[:2]) for p in tree]
            deadline = time.monotonic() + 30
            while any(sum(p.cpu_times()[:2]) - was < 0.1 for p, was in zip(tree, start, strict=True)):
                assert time.monotonic() < deadline, "a resumed process took no CPU"
                time.sleep(0.05)
        before = cpu_seconds(process.pid)
        time.sleep(0.5)
        assert cpu_seconds(process.pid) - before < 0.02  # suspended again after the block
    finally:
        resume(process.pid)
        stop(process)


def test_the_defaults_the_bench_spells_out_for_deepcanvas_are_the_services_own() -> None:
    for variable, value in SHIPPED_DEFAULTS.items():
        default = Settings.model_fields[variable.removeprefix("DEEPCANVAS_").lower()].default
        assert (str(default).lower() if isinstance(default, bool) else str(default)) == value, variable
