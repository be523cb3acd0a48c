"""Throughput and tail latency under concurrent clients: DeepCanvas against a peer, in one run.

The peer is ``baseline`` (``bench/baseline_app.py``, a plain FastAPI app) or ``litserve``
(``bench/litserve_app.py``, LitServe with its dynamic batching on the same exported networks).
Each side runs as its own server process group. Both are up for the whole run and take turns: each point
(endpoint, client count) is measured in alternating blocks, so that both sides see the same machine (its speed
drifts by 10-25 % within minutes here, and sides measured one after the other differed by that much). The
side not being measured is suspended (SIGSTOP): an idle LitServe polls its queues, and running it took 0.45 of a
core from DeepCanvas. The CPU the paused side used during the other's blocks is reported (zero when pausing
works). Clients are asyncio tasks in this process sending the same photo in a closed loop for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ENDPOINTS = ("/detect", "/classify", "/stylize")
PEERS = ("baseline", "litserve")
RESPONSE_TIMEOUT_S = 300
LOAD_BLOCKS = 4  # blocks per side and point; the sides alternate, and which goes first alternates too
RESUME_PAUSE_S = 0.3  # after resuming a suspended server, before its block starts


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class LoadResult:
    side: str
    endpoint: str
    clients: int
    requests: int
    errors: int
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def request_for(endpoint: str, photo: bytes, style: str, max_side: int) -> dict[str, Any]:
    if endpoint == "/detect":
        return {"files": {"image": ("photo.jpg", photo)}}
    if endpoint == "/classify":
        return {"files": {"image": ("photo.jpg", photo)}, "data": {"detect_faces": "false"}}
    return {"files": {"content": ("photo.jpg", photo)}, "data": {"style_name": style, "max_side": str(max_side)}}


def encode_request(base: str, endpoint: str, request: dict[str, Any]) -> bytes:
    """The whole HTTP/1.1 request as bytes, built once (httpx writes the multipart body) and replayed."""
    built = httpx.Request("POST", base + endpoint, **request)
    body = built.read()
    head = [f"POST {endpoint} HTTP/1.1", f"Host: {built.url.netloc.decode()}", "Connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in built.headers.items() if k.lower() not in ("host", "connection")]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response (Content-Length or chunked body); its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")  # the empty trailer
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


async def replay(base: str, endpoint: str, request: dict[str, Any], repeats: int, warmup: int = 2) -> list[float]:
    """Milliseconds of ``repeats`` requests sent one after another on one keep-alive connection, as raw bytes.

    What the server costs without a client library's own work (httpx takes about a millisecond of CPU per
    request to write the multipart body and parse the answer, in the process that measures).
    """
    payload = encode_request(base, endpoint, request)
    url = httpx.URL(base)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    samples = []
    try:
        for index in range(warmup + repeats):
            started = time.perf_counter()
            writer.write(payload)
            await writer.drain()
            status, _ = await read_response(reader)
            if status != 200:
                raise RuntimeError(f"{endpoint} answered {status}")
            if index >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()
    return samples


@dataclass
class Samples:
    """What one block of closed-loop load gave: each answered request's milliseconds, the errors, the time."""

    latencies: list[float]
    errors: int
    elapsed_s: float


def summarize(side: str, endpoint: str, clients: int, blocks: list[Samples]) -> LoadResult:
    """One point from its blocks: requests over the blocks' summed time, percentiles over all latencies."""
    latencies = [ms for block in blocks for ms in block.latencies]
    samples = latencies or [float("nan")]
    elapsed = sum(block.elapsed_s for block in blocks)
    return LoadResult(
        side,
        endpoint,
        clients,
        len(latencies),
        sum(block.errors for block in blocks),
        len(latencies) / elapsed if elapsed > 0 else 0.0,
        statistics.median(samples),
        percentile(samples, 0.95),
        percentile(samples, 0.99),
    )


async def drive_block(base: str, endpoint: str, request: dict[str, Any], clients: int, seconds: float) -> Samples:
    """``clients`` keep-alive connections, each sending the same request in a closed loop for ``seconds``.

    The client replays pre-encoded bytes over raw asyncio streams: a full HTTP client costs about a
    millisecond of CPU per request, which on a 2-core machine would be taken from the server measured.
    """
    latencies: list[float] = []
    errors = 0
    payload = encode_request(base, endpoint, request)
    url = httpx.URL(base)
    deadline = time.perf_counter() + seconds

    async def client_loop() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(payload)
                await writer.drain()
                async with asyncio.timeout(RESPONSE_TIMEOUT_S):  # a hung server fails the run, not stalls it
                    status, keep_alive = await read_response(reader)
                if status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(url.host, url.port)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return Samples(latencies, errors, time.perf_counter() - started)


async def drive(base: str, endpoint: str, request: dict[str, Any], clients: int, seconds: float) -> LoadResult:
    """One block of load (``drive_block``), summarized."""
    return summarize("", endpoint, clients, [await drive_block(base, endpoint, request, clients, seconds)])


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], port: int, env: dict[str, str], poll_s: float = 0.1) -> subprocess.Popen[bytes]:
    """A server in its own process group (LitServe forks workers), ready on ``/readyz`` (polled each ``poll_s``)."""
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ | env, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{args[0]} exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    stop(process)
    raise TimeoutError(f"{args} not ready")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a server and the processes it started."""
    parent = psutil.Process(pid)
    total = 0.0
    for process in (parent, *parent.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += sum(process.cpu_times()[:2])
    return total


def settle(pid: int, quiet_share: float = 0.1, interval_s: float = 0.5, limit_s: float = 60.0) -> float:
    """Seconds until a server (and the processes it started) used under ``quiet_share`` of a core for ``interval_s``.

    Readiness does not wait for deferred warm-ups (NST's) and start-up caches (the gallery's statistics):
    timing during them would charge their work to the first endpoint measured.
    """
    started = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - started < limit_s:
        time.sleep(interval_s)
        now = cpu_seconds(pid)
        if now - before < quiet_share * interval_s:
            break
        before = now
    return time.perf_counter() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server and every process it started, so none keeps a core or the port."""
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(process.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what did not stop, and workers that outlived their parent
    process.wait()
    psutil.wait_procs(children, timeout=30)


def server_args(side: str, store: str, port: int, peer_options: tuple[str, ...] = ()) -> list[str]:
    if side == "deepcanvas":
        deepcanvas = str(Path(sys.executable).parent / "deepcanvas")
        return [deepcanvas, "serve", "--host", "127.0.0.1", "--port", str(port), "--store", store]
    if side == "litserve":
        return [sys.executable, "-m", "bench.litserve_app", "--port", str(port), *peer_options]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline_app:create_baseline",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def block_order(sides: tuple[str, ...], block: int) -> tuple[str, ...]:
    """The sides in turn, the first of them alternating from block to block (neither always follows the other)."""
    return sides if block % 2 == 0 else sides[::-1]


def process_tree(pid: int) -> list[psutil.Process]:
    """A server and the processes it started; none once it has gone."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def suspend(pid: int) -> None:
    """Stop a server and the processes it started (SIGSTOP): a paused side takes no CPU from the measured one."""
    for process in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            process.suspend()


def resume(pid: int) -> None:
    for process in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            process.resume()


@contextlib.contextmanager
def awake(pid: int, pause_s: float = RESUME_PAUSE_S) -> Iterator[None]:
    """A suspended server resumed for the block (after ``pause_s`` for its timers to catch up), then suspended."""
    resume(pid)
    time.sleep(pause_s)
    try:
        yield
    finally:
        suspend(pid)


def alternate(
    bases: dict[str, str],
    pids: dict[str, int],
    endpoint: str,
    request: dict[str, Any],
    clients: int,
    seconds: float,
    blocks: int,
    pause: bool = True,
) -> tuple[list[LoadResult], dict[str, float]]:
    """One point on every side, in ``blocks`` alternating blocks of ``seconds / blocks`` each.

    With ``pause`` the sides are suspended between their blocks (``awake``): an idle LitServe polls its queues
    and took 0.45 of a core while DeepCanvas was measured. Also returns the CPU (in cores) each side used while
    the others were measured, which pausing makes zero.
    """
    sides = tuple(bases)
    collected: dict[str, list[Samples]] = {side: [] for side in sides}
    idle_cpu = dict.fromkeys(sides, 0.0)
    idle_time = dict.fromkeys(sides, 0.0)
    for block in range(blocks):
        for side in block_order(sides, block):
            others = [other for other in sides if other != side]
            before = {other: cpu_seconds(pids[other]) for other in others}
            with awake(pids[side]) if pause else contextlib.nullcontext():
                samples = asyncio.run(drive_block(bases[side], endpoint, request, clients, seconds / blocks))
            collected[side].append(samples)
            for other in others:
                idle_cpu[other] += cpu_seconds(pids[other]) - before[other]
                idle_time[other] += samples.elapsed_s
    results = [summarize(side, endpoint, clients, collected[side]) for side in sides]
    return results, {side: idle_cpu[side] / idle_time[side] if idle_time[side] else 0.0 for side in sides}


def resident_mb(pid: int) -> float:
    """Resident memory of a server and the processes it started (LitServe's workers)."""
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (parent, *parent.children(recursive=True))) / 2**20


def compare(results: list[LoadResult], peer: str = "baseline") -> list[dict[str, Any]]:
    """Per endpoint and client count: throughput DeepCanvas / peer, p99 DeepCanvas / peer, and our p99/p50."""
    by_key = {(r.side, r.endpoint, r.clients): r for r in results}
    rows = []
    for (side, endpoint, clients), ours in by_key.items():
        base = by_key.get((peer, endpoint, clients))
        if side != "deepcanvas" or base is None:
            continue
        rows.append(
            {
                "endpoint": endpoint,
                "clients": clients,
                "throughput_ratio": round(ours.throughput_rps / max(base.throughput_rps, 1e-9), 2),
                "p99_ratio": round(ours.p99_ms / max(base.p99_ms, 1e-9), 2),
                "p99_over_p50": round(ours.p99_ms / ours.p50_ms, 2),
            }
        )
    return rows


def run_load_bench(
    photo: bytes,
    store: str,
    style: str,
    port: int,
    max_side: int = 256,
    clients: tuple[int, ...] = (1, 4, 16),
    seconds: float = 10.0,
    endpoints: tuple[str, ...] = ENDPOINTS,
    peer: str = "baseline",
    peer_options: tuple[str, ...] = (),
    envs: dict[str, dict[str, str]] | None = None,
    blocks: int = LOAD_BLOCKS,
) -> dict[str, Any]:
    """Both sides up at once, in turn: each runs only for its own blocks; ``envs`` adds environment variables per side.

    ``seconds`` is each side's time per point, split into ``blocks``. The peer listens on ``port``, DeepCanvas
    on another free port.
    """
    assert peer in PEERS, f"peer is one of {PEERS}, not {peer!r}"
    assert blocks >= 1, "at least one block"
    envs = envs or {}
    ports = {peer: port, "deepcanvas": free_port()}
    bases = {side: f"http://127.0.0.1:{side_port}" for side, side_port in ports.items()}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    results: list[LoadResult] = []
    idle: list[dict[str, Any]] = []
    try:
        for side, side_port in ports.items():  # each started, settled alone and suspended until its blocks
            options = peer_options if side == peer else ()
            env = {"DEEPCANVAS_STORE": store} | envs.get(side, {})
            processes[side] = spawn(server_args(side, store, side_port, options), side_port, env)
            settle(processes[side].pid)  # deferred warm-ups and workers' start-up done before any timing
            suspend(processes[side].pid)
        pids = {side: process.pid for side, process in processes.items()}
        for endpoint in endpoints:
            request = request_for(endpoint, photo, style, max_side)
            for side, base in bases.items():
                with awake(pids[side]):
                    asyncio.run(drive_block(base, endpoint, request, 1, min(seconds, 3)))  # warm-up
            for count in clients:
                point, idle_cores = alternate(bases, pids, endpoint, request, count, seconds, blocks)
                results.extend(point)
                cores = {side: round(value, 3) for side, value in idle_cores.items()}
                idle.append({"endpoint": endpoint, "clients": count, "cores": cores})
        memory = {side: resident_mb(pid) for side, pid in pids.items()}
    finally:
        for process in processes.values():
            resume(process.pid)  # a stopped process would not act on stop()'s SIGTERM
            stop(process)
    return {
        "peer": peer,
        "peer_options": list(peer_options),
        "settings": envs,
        "seconds_per_point": seconds,
        "blocks_per_point": blocks,
        "results": [asdict(r) for r in results],
        "idle_side_cores": idle,
        "rss_mb_after_load": {k: round(v, 1) for k, v in memory.items()},
        "comparison": compare(results, peer),
    }


# DeepCanvas's defaults, spelled out so that settings in the benchmark's own environment do not leak in.
SHIPPED_DEFAULTS = {f"DEEPCANVAS_{role}_BACKEND": "auto" for role in ("DETECTOR", "CLASSIFIER", "STYLE")} | {
    "DEEPCANVAS_WEIGHTS_PRECISION": "auto",
    "DEEPCANVAS_DETECTOR_STREAMS": "2",
    "DEEPCANVAS_DETECTOR_VIEWS": "true",
}
SCENARIO_TITLES = {
    "same_network": "Same network and engine on both sides (the serving layer alone)",
    "as_shipped": "As shipped: DeepCanvas's artifacts and defaults against LitServe serving the float networks",
}


def litserve_scenarios(engine: str) -> dict[str, dict[str, dict[str, str]]]:
    """The two comparisons of ``--peer litserve``, as each side's environment.

    ``same_network``: both sides run the float ONNX networks on ``engine`` through the same predictors and
    engine settings, the detector's two-stream lanes included (the serving layers alone). ``as_shipped``:
    DeepCanvas with its defaults (``auto`` engines, the int8 files the manifests make the default, gallery
    statistics cached, the detector's lanes) against LitServe serving the float networks on ``engine`` as
    ``bench/litserve_app.py`` documents: ``--plain`` (no style statistics cache), each network compiled
    once for one request at a time, the engine's plain use (no lanes), and the detector's graphs as its
    authors publish them, every photo stretched to their one input (no view graphs).
    """
    float_on_engine = {f"DEEPCANVAS_{role}_BACKEND": engine for role in ("DETECTOR", "CLASSIFIER", "STYLE")}
    float_on_engine["DEEPCANVAS_WEIGHTS_PRECISION"] = "float32"
    float_on_engine["DEEPCANVAS_DETECTOR_STREAMS"] = SHIPPED_DEFAULTS["DEEPCANVAS_DETECTOR_STREAMS"]
    return {
        "same_network": {"litserve": float_on_engine, "deepcanvas": float_on_engine},
        "as_shipped": {
            "litserve": float_on_engine | {"DEEPCANVAS_DETECTOR_STREAMS": "1", "DEEPCANVAS_DETECTOR_VIEWS": "false"},
            "deepcanvas": SHIPPED_DEFAULTS,
        },
    }


def print_load_report(report: dict[str, Any], console: Any, title: str | None = None) -> None:
    from rich.table import Table

    if title:
        console.rule(title)
    table = Table("side", "endpoint", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
    for row in report["results"]:
        table.add_row(
            row["side"],
            row["endpoint"],
            str(row["clients"]),
            f"{row['throughput_rps']:.2f}",
            f"{row['p50_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            str(row["errors"]),
        )
    console.print(table)
    peer = report.get("peer", "baseline")
    ratios = Table(
        "endpoint", "clients", f"throughput DeepCanvas / {peer}", f"p99 DeepCanvas / {peer}", "DeepCanvas p99 / p50"
    )
    for row in report["comparison"]:
        ratios.add_row(
            row["endpoint"],
            str(row["clients"]),
            f"{row['throughput_ratio']:.2f}×",
            f"{row['p99_ratio']:.2f}",
            f"{row['p99_over_p50']:.2f}",
        )
    console.print(ratios)
    console.print(f"resident memory after load (MB): {report['rss_mb_after_load']}")
    idle = report.get("idle_side_cores", [])
    if idle:
        most = max(value for row in idle for value in row["cores"].values())
        console.print(
            f"{report.get('blocks_per_point', 1)} alternating blocks per point, the other side suspended; "
            f"the most CPU a suspended side took: {most:.3f} cores"
        )
