"""Telemetry: Prometheus metrics, CloudWatch Embedded Metric Format, JSON request logs, request ids.

One ASGI middleware observes every request (route template, status, duration, the inferences it
ran) and feeds all three sinks; model and parameter state is read at scrape time by a collector.
It also sets the request's id (``app.request_ids``) for every log line written while serving it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import internal_error
from app.manager import Inference, ModelManager, inferences
from app.request_ids import RequestIdFilter, current_request_id, request_id_from
from app.timings import phases

access = logging.getLogger("deepcanvas.access")
CLIENT_CLOSED = 499  # nginx's "client closed request": the client left before its request was read whole
QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# /stylize's method=nst paints for up to nst_max_seconds (55 s) where AdaIN answers in milliseconds: its requests
# carry a route label of their own (``label_route``), in the metrics, the EMF ``route`` dimension and the access
# log alike, so that /stylize's latency, and the CloudWatch alarm on it (infra/stacks/observability.py), is AdaIN's.
NST_ROUTE = "/stylize?method=nst"

# The label a handler gives its request in place of the route's template (``label_route``), read after the response.
route_labels: ContextVar[list[str] | None] = ContextVar("route_labels", default=None)


def label_route(label: str) -> None:
    """Count the current request under ``label`` rather than its route's template (nothing outside a request)."""
    record = route_labels.get()
    if record is not None:
        record.append(label)


class ModelStateCollector(Collector):
    """Queue depth, loaded versions, load times and the parameters' version, read when scraped.

    A series per slot, labelled ``model`` (the artifact's name, as ``/models`` and the admin routes name it) and
    ``slot`` (what runs it): one artifact may feed two slots (adain: ``style`` and ``nst``), which labelled by the
    model alone gave two identical ``model_info`` series, while ``queue_depth`` put the slot in ``model``. Every
    per-model metric carries both, so they join on ``model, slot``.
    """

    def __init__(self, manager: Callable[[], ModelManager | None], params_version: Callable[[], int]) -> None:
        self.manager = manager
        self.params_version = params_version

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "deepcanvas_queue_depth", "Items waiting or running per model slot", labels=["model", "slot"]
        )
        info = GaugeMetricFamily(
            "deepcanvas_model_info", "Loaded model versions per slot", labels=["model", "slot", "version", "task"]
        )
        load = GaugeMetricFamily(
            "deepcanvas_model_load_seconds",
            "Fetch, verify, build and warm-up time",
            labels=["model", "slot", "version"],
        )
        manager = self.manager()
        for slot in manager.slots.values() if manager else ():
            model, version = slot.manifest.name, slot.manifest.version
            depth.add_metric([model, slot.name], slot.pending)
            info.add_metric([model, slot.name, version, slot.manifest.task], 1)
            load.add_metric([model, slot.name, version], slot.load_seconds)
        params = GaugeMetricFamily("deepcanvas_params_version", "Version of the runtime parameters in force")
        params.add_metric([], self.params_version())
        yield from (depth, info, load, params)


class ServiceMetrics:
    """The Prometheus registry of one app (not the process-global one, so apps never collide)."""

    def __init__(self, manager: Callable[[], ModelManager | None], params_version: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deepcanvas_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.request_duration = Histogram(
            "deepcanvas_request_duration_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_duration = Histogram(
            "deepcanvas_inference_duration_seconds",
            "Time in a model's predict",
            ["model", "slot", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge("deepcanvas_inflight_requests", "Requests being served", registry=self.registry)
        self.registry.register(ModelStateCollector(manager, params_version))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EmfEmitter:
    """CloudWatch metrics as EMF documents on stdout, which the awslogs driver turns into metrics."""

    def __init__(self, namespace: str, service: str) -> None:
        self.namespace = namespace
        self.service = service

    async def emit(self, route: str, status: int, seconds: float, ran: list[Inference]) -> None:
        from aws_embedded_metrics.config import get_config
        from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger

        get_config().environment = "local"  # stdout sink: never probe an EC2 metadata address
        request = create_metrics_logger()
        request.set_namespace(self.namespace)
        request.set_dimensions({"service": self.service, "route": route})
        request.put_metric("Latency", seconds * 1000, "Milliseconds")
        request.put_metric("Requests", 1, "Count")
        request.put_metric("Errors", 1 if status >= 500 else 0, "Count")
        request.put_metric("ClientErrors", 1 if 400 <= status < 500 else 0, "Count")
        await request.flush()
        for one in ran:  # by slot too: adain's style and nst calls take milliseconds and seconds
            inference = create_metrics_logger()
            inference.set_namespace(self.namespace)
            inference.set_dimensions(
                {"service": self.service, "model": one.model, "slot": one.slot, "version": one.version}
            )
            inference.put_metric("InferenceTime", one.seconds * 1000, "Milliseconds")
            await inference.flush()


def server_timing(steps: list[tuple[str, float]], ran: list[Inference], total: float) -> str:
    """The ``Server-Timing`` value: each step and inference (its model in ``desc``), then ``total``, in ms.

    ``total`` runs from the request reaching the service to its response headers; what it holds beyond the
    steps and inferences is the HTTP framework's share (routing, form parsing, validation, serialisation).
    """
    parts = [f"{name};dur={seconds * 1000:.2f}" for name, seconds in steps]
    parts += [f'infer;desc="{one.model}/{one.version}";dur={one.seconds * 1000:.2f}' for one in ran]
    return ", ".join([*parts, f"total;dur={total * 1000:.2f}"])


class TelemetryMiddleware:
    """Request id in and out, metrics, one JSON log line per request, and EMF when enabled."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, emf: EmfEmitter | None) -> None:
        self.app = app
        self.metrics = metrics
        self.emf = emf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(dict(scope["headers"]).get(b"x-request-id", b""))
        status = 500
        body_read = answered = left_mid_body = False
        ran: list[Inference] = []
        steps: list[tuple[str, float]] = []
        labels: list[str] = []
        token, steps_token, labels_token = inferences.set(ran), phases.set(steps), route_labels.set(labels)
        id_token = current_request_id.set(request_id)
        started = time.perf_counter()

        async def receive_watched() -> Message:
            nonlocal body_read, left_mid_body
            message = await receive()
            if message["type"] == "http.request":
                body_read = body_read or not message.get("more_body", False)
            elif message["type"] == "http.disconnect" and not (body_read or answered):
                left_mid_body = True  # the body parser makes it a 400, an answer nobody receives
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if left_mid_body:
                return  # nothing to send: the connection is gone
            if message["type"] == "http.response.start":
                answered = True
                status = message["status"]
                timing = server_timing(steps, ran, time.perf_counter() - started)
                headers = [(b"x-request-id", request_id.encode()), (b"server-timing", timing.encode())]
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive_watched, send_with_id)
        except Exception as error:
            if answered or left_mid_body:
                raise  # too late for an answer of ours
            # An error no route handler took is answered here, inside CORS, with the request's id and timing:
            # Starlette's own 500 comes from outside every middleware, without the CORS headers a page on another
            # origin needs to read it (it saw a "CORS error", not the 500), and was logged twice.
            await internal_error(scope["method"], scope["path"], error)(scope, receive, send_with_id)
        finally:
            self.metrics.inflight.dec()
            inferences.reset(token)
            phases.reset(steps_token)
            route_labels.reset(labels_token)
            status = CLIENT_CLOSED if left_mid_body else status
            route = labels[-1] if labels else route_label(scope)
            await self._record(scope, route, request_id, status, time.perf_counter() - started, ran)
        # Only on a normal end: an error that escapes (one after the answer began) goes on to Starlette's
        # ServerErrorMiddleware, outside this one, and then to the server, which log it. Both run in this request's
        # task, which ends with the request, so the id stays set for their lines.
        current_request_id.reset(id_token)

    async def _record(
        self, scope: Scope, route: str, request_id: str, status: int, seconds: float, ran: list[Inference]
    ) -> None:
        self.metrics.requests.labels(route, scope["method"], str(status)).inc()
        self.metrics.request_duration.labels(route).observe(seconds)
        for one in ran:
            self.metrics.inference_duration.labels(one.model, one.slot, one.version).observe(one.seconds)
        client = scope.get("client")
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            "models": [f"{one.model}/{one.version}" for one in ran],
        }
        if not (route in QUIET_ROUTES and status < 400):  # probes and scrapes every few seconds: only failures
            access.info("%s %s %d", scope["method"], scope["path"], status, extra={"fields": fields})
        if self.emf is not None:
            await self.emf.emit(route, status, seconds, ran)


def route_label(scope: Scope) -> str:
    """The template of the route that served ``scope``, or would have: a middleware's answer (413 from the body
    limit, 503 while draining) comes before routing, yet belongs on its route's dashboards. "unmatched" otherwise.
    """
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    partial = None
    for route in iter_route_contexts(getattr(scope.get("app"), "routes", None) or []):  # included routers too
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(route.path)
        if match is Match.PARTIAL and partial is None:  # the path, another method (a HEAD, a 405)
            partial = str(route.path)
    return partial or "unmatched"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's id (``RequestIdFilter``; none
    outside a request), and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            document["request_id"] = request_id
        document.update(getattr(record, "fields", {}))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class FirstOfEachWarning(logging.Filter):
    """Passes a Python warning the first time only (by location and text), then drops it.

    The ``warnings`` module's own once-per-location memory is wiped whenever its filters change, which
    ``warnings.catch_warnings`` does on every image decode: Pillow's "Corrupt EXIF data" came once per photo.
    """

    def __init__(self, capacity: int = 1024) -> None:
        super().__init__()
        self.capacity = capacity
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        if len(self.seen) >= self.capacity:  # bounded: a flood of distinct warnings may repeat some
            self.seen.clear()
        self.seen.add(text)
        # "file:line: Category: message" without the source line that warnings adds below it.
        record.msg, record.args = (text.strip().splitlines() or [""])[0], None
        return True


def configure_logging(level: str, fmt: str) -> None:
    """One handler on the root logger, and Python warnings through it (JSON lines, not raw stderr text).

    The handler stamps every line written while a request is served with its id (``RequestIdFilter``): the
    access line, and the error, audit and warning lines of any logger, so that they join up.
    """
    handler = logging.StreamHandler()
    text = logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s", defaults={"request_id": "-"}
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else text)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    warned = logging.getLogger("py.warnings")
    warned.filters[:] = [f for f in warned.filters if not isinstance(f, FirstOfEachWarning)]
    warned.addFilter(FirstOfEachWarning())
