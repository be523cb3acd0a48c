"""Deployment configuration: CDK context values, typed and validated once, with the defaults in one place.

Pure Python (no aws_cdk import) so it is cheap to test. Context values given as ``-c key=value`` arrive as
strings, values from ``cdk.json`` or ``CDK_CONTEXT_JSON`` as JSON types: both are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

# The service reads and writes these in the model store (app/runtime.py: PARAMS_KEY, ACTIVE_KEY); the task
# role may write nothing else. tests/infra pins that the two lists agree.
MODELS_PREFIX = "models"
RUNTIME_DOCUMENT_KEYS: tuple[str, ...] = ("_runtime/params.json", "_runtime/active.json")

CONTAINER_NAME = "deepcanvas"
CONTAINER_PORT = 8000
HEALTH_CHECK_PATH = "/readyz"
# The server's keep-alive timeout must exceed this, or the ALB reuses connections the server has closed (502s).
ALB_IDLE_TIMEOUT_S = 60
# ECS sends SIGTERM, waits stopTimeout, then SIGKILL; the service needs grace_period_s plus a margin to exit.
STOP_TIMEOUT_MARGIN_S = 10
FARGATE_MAX_STOP_TIMEOUT_S = 120

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
    health_check_grace_s: int = 180
    min_capacity: int = 1
    max_capacity: int = 4
    cpu_target_percent: int = 60
    requests_per_target: int = 120
    image_tag: str = "latest"
    keep_images: int = 20
    alarm_p99_latency_s: float = 5.0
    alarm_5xx_percent: float = 5.0
    alarm_utilisation_percent: float = 85.0
    alarm_email: str | None = None
    certificate_arn: str | None = None
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
        if self.nat_gateways < 1:
            raise ValueError("nat_gateways must be at least 1: tasks in private subnets reach ECR through NAT")

    def _check_capacity(self) -> None:
        if not 1 <= self.min_capacity <= self.max_capacity:
            raise ValueError(f"need 1 <= min_capacity <= max_capacity, got {self.min_capacity}..{self.max_capacity}")
        if not 1 <= self.cpu_target_percent <= 100:
            raise ValueError(f"cpu_target_percent must be in 1..100, got {self.cpu_target_percent}")

    def _check_fargate_size(self) -> None:
        if self.cpu not in FARGATE_MEMORY_MIB:
            raise ValueError(f"cpu must be one of Fargate's sizes {sorted(FARGATE_MEMORY_MIB)}, got {self.cpu}")
        low, high, step = FARGATE_MEMORY_MIB[self.cpu]
        if not (low <= self.memory <= high and (self.memory - low) % step == 0):
            raise ValueError(f"memory {self.memory} MiB is not valid with cpu {self.cpu}: {low}..{high} by {step}")

    @property
    def stop_timeout_s(self) -> int:
        return self.grace_period_s + STOP_TIMEOUT_MARGIN_S

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
    return _as_text(key, raw)
