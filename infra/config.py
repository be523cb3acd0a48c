"""Deployment configuration: CDK context values, typed and validated once, with the defaults in one place.

Pure Python (no aws_cdk import) so it is cheap to test. Context values given as ``-c key=value`` arrive as
strings, values from ``cdk.json`` or ``CDK_CONTEXT_JSON`` as JSON types: both are accepted.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

# The service reads and writes these in the model store (app/runtime.py: PARAMS_KEY, ACTIVE_KEY); the task
# role may write nothing else. tests/infra pins that the two lists agree.
MODELS_PREFIX = "models"
# What the service accepts as a CORS origin (app.settings.web_origin normalises it further at start).
CORS_ORIGIN = re.compile(r"\*|https?://[^/?#@\s]+/?")
RUNTIME_DOCUMENT_KEYS: tuple[str, ...] = ("_runtime/params.json", "_runtime/active.json")

CONTAINER_NAME = "deepcanvas"
CONTAINER_PORT = 8000
HEALTH_CHECK_PATH = "/readyz"
# The service's own CloudWatch metrics (EMF lines on stdout, app/telemetry.py): the task is given this namespace
# and service name (DEEPCANVAS_EMF_NAMESPACE, DEEPCANVAS_SERVICE_NAME) rather than left to the service's defaults,
# so the alarms below read exactly what it writes.
EMF_NAMESPACE = "DeepCanvas"
SERVICE_NAME = "deepcanvas"
# The routes a person waits on, by the ``route`` dimension the service emits (its route template): the latency alarm
# watches the slowest p99 among them. /stylize is AdaIN's alone: method=nst (up to nst_max_seconds) is emitted as
# NST_ROUTE (app/telemetry.py), graphed on the dashboard and in no alarm. At most 10 (a metric-math alarm's limit).
INTERACTIVE_ROUTES: tuple[str, ...] = ("/detect", "/classify", "/identify", "/verify", "/stylize")
NST_ROUTE = "/stylize?method=nst"
# What the public load balancer answers itself (listener rules, infra/routing.py), in priority order.
# A %-escape in the first path segment: no public route has one, and the service decodes escapes before it routes,
# so /%6detrics or /admin%2Fparams would pass rules that compare the path as sent. 404.
ENCODED_SEGMENT_REGEX = "^/[^/]*%.*$"
ENCODED_SEGMENT_RULE_PRIORITY = 5
# Paths for callers inside the VPC only: 404.
INTERNAL_PATHS = ("/metrics", "/metrics/*")
INTERNAL_RULE_PRIORITY = 10
# The admin-token routes: forwarded from admin_cidrs only (source-ip rules), 403 from anywhere else.
ADMIN_ROUTES: dict[str, tuple[str, ...]] = {
    "Admin": ("/admin", "/admin/*"),
    "Identities": ("/identities", "/identities/*"),
}
# ELB listener rule limits: 3 values in one condition, 5 in one rule (source addresses count), so a rule takes a
# route's 2 paths and 3 networks. 30 networks make 10 rules a route: each route owns a block of 10 priorities
# (100-109, 110-119), so a change of admin_cidrs never moves one route's rule onto another's priority.
RULE_VALUES_PER_CONDITION = 3
RULE_VALUES_PER_RULE = 5
MAX_ADMIN_CIDRS = 30
ADMIN_ALLOW_RULE_PRIORITY = 100
ADMIN_ALLOW_PRIORITY_BLOCK = 10
ADMIN_DENY_RULE_PRIORITY = 200
# An ACM certificate (or an IAM server certificate) for the HTTPS listener.
CERTIFICATE_ARN = re.compile(
    r"arn:aws[a-z-]*:(acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+|iam::\d{12}:server-certificate/[\w+=,.@/-]+)"
)
# The server's keep-alive timeout must exceed this, or the ALB reuses connections the server has closed (502s).
ALB_IDLE_TIMEOUT_S = 60
# ECS sends SIGTERM, waits stopTimeout, then SIGKILL; the service needs grace_period_s plus a margin to exit.
STOP_TIMEOUT_MARGIN_S = 10
FARGATE_MAX_STOP_TIMEOUT_S = 120
# The longest request is /stylize with method=nst: up to nst_max_seconds of painting (DEEPCANVAS_NST_MAX_SECONDS),
# with the upload's decode before it and the answer's encode after it inside this margin. ECS stops a task only
# once the load balancer has drained it (the target is unused: no request in flight, or the deregistration delay
# over), so the delay must outlast that request, or a deployment or a scale-in cuts it.
REQUEST_MARGIN_S = 10
# The painting sends nothing: past the load balancer's idle timeout the client gets a 504 instead of the image.
NST_IDLE_MARGIN_S = 5

# The identity database (RDS PostgreSQL): the service reads these as DEEPCANVAS_DATABASE_* (app/settings.py).
DATABASE_NAME = "deepcanvas"
DATABASE_USER = "deepcanvas"
DATABASE_PORT = 5432
# RDS keeps automated backups 1..35 days; gp3 volumes start at 20 GiB.
MAX_BACKUP_RETENTION_DAYS = 35
MIN_DB_STORAGE_GIB = 20

PLACEHOLDER_CONNECTION_ARN = (
    "arn:aws:codeconnections:us-east-1:123456789012:connection/00000000-0000-0000-0000-000000000000"
)

# Fargate's valid (cpu units -> memory MiB range, step) combinations.
FARGATE_MEMORY_MIB: dict[int, tuple[int, int, int]] = {
    256: (512, 2048, 512),
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}

ContextGetter = Callable[[str], Any]


def runtime_document_object_keys() -> list[str]:
    """The store-relative runtime documents as bucket keys under the models prefix."""
    return [f"{MODELS_PREFIX}/{key}" for key in RUNTIME_DOCUMENT_KEYS]


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ValueError(f"context {key!r} must be a non-negative integer, got {value!r}")
    return int(value)


def _as_float(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"context {key!r} must be a number, got {value!r}") from error
    if number <= 0:
        raise ValueError(f"context {key!r} must be positive, got {value!r}")
    return number


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"context {key!r} must be true or false, got {value!r}")


def _as_network(key: str, value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as error:
        raise ValueError(f"{key}: {value.strip()!r} is not an IP network (CIDR, host bits clear): {error}") from error


def _as_networks(key: str, value: Any) -> tuple[str, ...]:
    """A comma-separated string (``-c``) or a list (``cdk.json``) of CIDRs, normalised, in order, once each."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"context {key!r} must be CIDRs, comma-separated or a list, got {value!r}")
    return tuple(dict.fromkeys(_as_network(key, item) for item in items if item.strip()))


def _as_text(key: str, value: Any) -> str:
    if not isinstance(value, str | int) or not str(value).strip():
        raise ValueError(f"context {key!r} must be a non-empty string, got {value!r}")
    return str(value).strip()


@dataclass(frozen=True)
class DeployConfig:
    """Every knob of the deployment; each field is the CDK context key of the same name."""

    nat_gateways: int = 1
    cpu: int = 2048
    memory: int = 4096
    grace_period_s: int = 20
    # The service's DEEPCANVAS_NST_MAX_SECONDS (app/settings.py's default): the deregistration delay outlasts it.
    nst_max_seconds: float = 55.0
    health_check_grace_s: int = 180
    # Two tasks at least: the scheduler spreads them over the VPC's two zones, so a task that fails its health
    # check, an OOM kill or a zone outage leaves one serving while the replacement pulls its image and loads
    # (minutes); with one, each of those was an outage (the database is Multi-AZ for the same reason).
    min_capacity: int = 2
    max_capacity: int = 4
    cpu_target_percent: int = 60
    # ALB requests per task per minute to track as well; 0 (the default): CPU alone. A request costs from about
    # 2 ms (/classify) to 55 s of both cores (method=nst), so a count says nothing of how busy a task is: 120 a
    # minute (2 a second, against 120-540 /detect or /classify a second per task, docs/benchmarks-history.md) kept the
    # service at max_capacity under light load, and a few NST paintings a minute saturate a task unseen.
    requests_per_target: int = 0
    # The commit whose image the service's task definition names (the pipeline pushes one tag per commit, the
    # repository's tags are immutable): required, there is no "latest" to fall back on. The pipeline deploys
    # later commits as new task definition revisions; a cdk deploy of the service stack puts this one back.
    image_tag: str | None = None
    keep_images: int = 20
    alarm_p99_latency_s: float = 5.0
    alarm_5xx_percent: float = 5.0
    # 5xx the load balancer answers itself in a minute: 502 (a task closed or died mid-request), 503 (no healthy
    # task), 504 (no answer within the idle timeout). None reach the tasks, so the target 5xx rate never sees them.
    alarm_elb_5xx_count: int = 5
    alarm_utilisation_percent: float = 85.0
    db_instance_type: str = "t4g.medium"
    # MAJOR.MINOR; RDS applies later minors in the maintenance window (auto minor version upgrade).
    db_engine_version: str = "17.9"
    db_allocated_storage_gib: int = 20
    db_max_allocated_storage_gib: int = 100
    db_multi_az: bool = True
    db_backup_retention_days: int = 7
    db_deletion_protection: bool = True
    alarm_db_free_storage_gib: float = 2.0
    # About 75% of max_connections on a t4g.medium (RDS: memory / 9.5 MB): raise it with a larger instance.
    alarm_db_connections: int = 300
    alarm_email: str | None = None
    # HTTPS on 443 with this certificate, port 80 redirecting to it. Without one synthesis stops, unless
    # allow_plain_http says plain HTTP on port 80 is meant (a private test account only: tokens, keys, photos
    # and names would cross the network unencrypted).
    certificate_arn: str | None = None
    allow_plain_http: bool = False
    # Networks (CIDR, comma-separated) whose requests to the admin-token routes reach the service; none by default.
    admin_cidrs: tuple[str, ...] = ()
    # A generated key that the model routes require (DEEPCANVAS_API_KEYS; the load balancer is public).
    require_api_key: bool = True
    # Web origins whose pages may call the service from a browser (DEEPCANVAS_CORS_ORIGINS): comma-separated.
    cors_origins: str | None = None
    connection_arn: str = PLACEHOLDER_CONNECTION_ARN
    repo_owner: str = "deepcanvas"
    repo_name: str = "deepcanvas"
    branch: str = "main"

    def __post_init__(self) -> None:
        self._check_capacity()
        self._check_fargate_size()
        if self.stop_timeout_s > FARGATE_MAX_STOP_TIMEOUT_S:
            raise ValueError(
                f"grace_period_s {self.grace_period_s} + {STOP_TIMEOUT_MARGIN_S} s exceeds Fargate's "
                f"largest stop timeout ({FARGATE_MAX_STOP_TIMEOUT_S} s)"
            )
        if self.nst_max_seconds > ALB_IDLE_TIMEOUT_S - NST_IDLE_MARGIN_S:
            raise ValueError(
                f"nst_max_seconds {self.nst_max_seconds:g} leaves less than {NST_IDLE_MARGIN_S} s of the load "
                f"balancer's {ALB_IDLE_TIMEOUT_S} s idle timeout: a painting that long would end in a 504"
            )
        if self.nat_gateways < 1:
            raise ValueError("nat_gateways must be at least 1: tasks in private subnets reach ECR through NAT")
        self._check_database()
        self._check_transport()
        self._check_admin_cidrs()
        for origin in (self.cors_origins or "").split(","):
            if origin.strip() and not CORS_ORIGIN.fullmatch(origin.strip()):
                raise ValueError(f"cors_origins: {origin.strip()!r} is not * or scheme://host[:port]")
        self._check_image_tag()

    def _check_image_tag(self) -> None:
        if not self.image_tag:
            raise ValueError(
                "no image_tag: give -c image_tag=<commit> (make infra passes git's HEAD), the commit whose image the "
                "pipeline pushed to the registry (tags are commit ids; none is 'latest')"
            )
        if self.image_tag == "latest":
            raise ValueError(
                "image_tag 'latest' never exists: the registry's tags are immutable commit ids pushed by the pipeline"
            )

    def _check_capacity(self) -> None:
        if not 1 <= self.min_capacity <= self.max_capacity:
            raise ValueError(f"need 1 <= min_capacity <= max_capacity, got {self.min_capacity}..{self.max_capacity}")
        if not 1 <= self.cpu_target_percent <= 100:
            raise ValueError(f"cpu_target_percent must be in 1..100, got {self.cpu_target_percent}")

    def _check_database(self) -> None:
        if not 1 <= self.db_backup_retention_days <= MAX_BACKUP_RETENTION_DAYS:
            raise ValueError(
                f"db_backup_retention_days must be in 1..{MAX_BACKUP_RETENTION_DAYS}, "
                f"got {self.db_backup_retention_days}"
            )
        if not MIN_DB_STORAGE_GIB <= self.db_allocated_storage_gib <= self.db_max_allocated_storage_gib:
            raise ValueError(
                f"need {MIN_DB_STORAGE_GIB} <= db_allocated_storage_gib <= db_max_allocated_storage_gib, got "
                f"{self.db_allocated_storage_gib}..{self.db_max_allocated_storage_gib}"
            )
        major, dot, minor = self.db_engine_version.partition(".")
        if not (major.isdigit() and dot and minor.isdigit()):
            raise ValueError(f"db_engine_version must be a PostgreSQL MAJOR.MINOR, got {self.db_engine_version!r}")
        if self.alarm_db_connections < 1:
            raise ValueError("alarm_db_connections must be at least 1")

    def _check_transport(self) -> None:
        if self.certificate_arn and self.allow_plain_http:
            raise ValueError("certificate_arn and allow_plain_http=true contradict each other: give one of them")
        if self.certificate_arn and not CERTIFICATE_ARN.fullmatch(self.certificate_arn):
            raise ValueError(f"certificate_arn {self.certificate_arn!r} is not an ACM or IAM certificate ARN")
        if not self.certificate_arn and not self.allow_plain_http:
            raise ValueError(
                "no certificate_arn: the load balancer would serve plain HTTP, and the admin token, API keys, "
                "photos and enrolled names would cross the internet unencrypted. Give -c certificate_arn=<ACM "
                "certificate ARN> (HTTPS on 443, port 80 redirects), or -c allow_plain_http=true for a private "
                "test account only"
            )

    def _check_admin_cidrs(self) -> None:
        if len(self.admin_cidrs) > MAX_ADMIN_CIDRS:
            raise ValueError(f"admin_cidrs: at most {MAX_ADMIN_CIDRS} networks, got {len(self.admin_cidrs)}")
        for cidr in self.admin_cidrs:
            if _as_network("admin_cidrs", cidr) != cidr:
                raise ValueError(f"admin_cidrs: {cidr!r} is not written as a network, e.g. 203.0.113.0/24")

    def _check_fargate_size(self) -> None:
        if self.cpu not in FARGATE_MEMORY_MIB:
            raise ValueError(f"cpu must be one of Fargate's sizes {sorted(FARGATE_MEMORY_MIB)}, got {self.cpu}")
        low, high, step = FARGATE_MEMORY_MIB[self.cpu]
        if not (low <= self.memory <= high and (self.memory - low) % step == 0):
            raise ValueError(f"memory {self.memory} MiB is not valid with cpu {self.cpu}: {low}..{high} by {step}")

    @property
    def db_major_version(self) -> str:
        return self.db_engine_version.partition(".")[0]

    @property
    def stop_timeout_s(self) -> int:
        return self.grace_period_s + STOP_TIMEOUT_MARGIN_S

    @property
    def deregistration_delay_s(self) -> int:
        """How long the load balancer drains a task before ECS stops it: the longest request and its margin."""
        return math.ceil(self.nst_max_seconds) + REQUEST_MARGIN_S

    @classmethod
    def from_context(cls, get: ContextGetter) -> DeployConfig:
        """Read each field from ``get(name)`` (e.g. ``app.node.try_get_context``); None keeps the default."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = get(field.name)
            if raw is not None:
                values[field.name] = _coerce(field.name, field.type, raw)
        return cls(**values)

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> DeployConfig:
        return cls.from_context(context.get)


def _coerce(key: str, annotation: Any, raw: Any) -> Any:
    # With `from __future__ import annotations`, dataclass field types are the annotation strings.
    kind = str(annotation)
    if kind == "int":
        return _as_int(key, raw)
    if kind == "float":
        return _as_float(key, raw)
    if kind == "bool":
        return _as_bool(key, raw)
    if kind == "tuple[str, ...]":
        return _as_networks(key, raw)
    return _as_text(key, raw)
