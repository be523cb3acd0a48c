"""Service settings: one pydantic-settings class, prefix ``DEEPCANVAS_``, injected, validated at start."""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.artifact import check_safe_name
from models.onnx_backend import Engine, Precision, Runtime

EMBEDDED_STORE = Path(__file__).resolve().parent.parent / "models" / "store"

Role = Literal["detector", "classifier", "style", "gallery"]
# torch runs the networks from safetensors weights; onnx runs ONNX Runtime and openvino runs OpenVINO on
# the artifact's exported .onnx files (``deepcanvas models export``): neither needs torch or ultralytics.
Backend = Literal["torch", "onnx", "openvino"]
ROLES: tuple[Role, ...] = ("detector", "classifier", "style", "gallery")


def _check_model_ref(value: str) -> str:
    name, sep, ref = value.partition(":")
    if not sep:
        raise ValueError(f"model reference {value!r} must be NAME:VERSION or NAME:ALIAS")
    check_safe_name(name, "model name")
    check_safe_name(ref, "model version or alias")
    return value


ModelRef = Annotated[str, AfterValidator(_check_model_ref)]


def split_model_ref(value: str) -> tuple[str, str]:
    name, _, ref = value.partition(":")
    return name, ref


class Settings(BaseSettings):
    """Everything configurable; environment variables are ``DEEPCANVAS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DEEPCANVAS_", extra="ignore", frozen=True)

    store: str = Field(EMBEDDED_STORE.as_uri(), description="Model store URI: file:///path or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(None, description="Endpoint of an S3-compatible server")
    s3_region: str = "us-east-1"
    store_timeout_s: float = Field(10.0, gt=0, le=300, description="Connect and read timeout per store call")
    store_retries: int = Field(5, ge=0, le=100, description="Retries with backoff when the store is unreachable")
    cache_dir: Path = Field(Path(tempfile.gettempdir()) / "deepcanvas-cache")

    detector: ModelRef = "face-detector:stable"
    classifier: ModelRef = "face-gender:stable"
    style: ModelRef = "adain:stable"
    gallery: ModelRef = "style-gallery:stable"

    device: str = Field("cpu", description="torch device: cpu, cuda or cuda:N")
    torch_threads: int = Field(0, ge=0, le=256, description="Intra-op threads; 0 keeps torch's default")
    detector_backend: Backend = Field(
        "torch", description="Runs the detector: torch, or onnx / openvino (need model.onnx)"
    )
    classifier_backend: Backend = Field(
        "torch", description="Runs the classifier: torch, or onnx / openvino (need model.onnx)"
    )
    style_backend: Backend = Field(
        "torch", description="Runs AdaIN: torch, or onnx / openvino (need encoder.onnx, decoder.onnx; no method=nst)"
    )
    onnx_threads: int = Field(
        0, ge=0, le=256, description="Intra-op threads per ONNX Runtime or OpenVINO model; 0 keeps the engine's"
    )
    openvino_precision: Precision = Field(
        "auto",
        description="OpenVINO inference precision: auto (bf16 on CPUs with AMX or AVX-512 BF16, else f32), f32, bf16",
    )
    warmup: bool = True

    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest request body in bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest decoded image, width × height")
    body_timeout_s: float = Field(60.0, gt=0, le=3600, description="Longest time a request body may take to arrive")
    min_side: int = Field(16, ge=1, description="Smallest accepted image side in pixels")
    queue_size: int = Field(32, ge=1, le=10_000, description="Requests waiting per model before 503")

    stylize_max_side: int = Field(1024, ge=32, le=8192, description="Default bound on a stylized image's side")
    stylize_max_side_limit: int = Field(2048, ge=32, le=8192, description="Largest max_side a client may ask")
    nst_max_side: int = Field(512, ge=32, le=2048, description="Bound on the side of an NST output")
    nst_iterations: int = Field(500, ge=1, le=2000, description="Most L-BFGS steps of classical NST")
    nst_max_seconds: float = Field(55.0, gt=0, le=600, description="Most seconds of one NST optimisation")

    admin_token: SecretStr | None = Field(None, description="Bearer token of /admin; unset disables /admin")
    params_poll_s: float = Field(10.0, gt=0, le=3600, description="How often replicas re-read the store's documents")
    grace_period_s: float = Field(20.0, ge=0, le=600, description="SIGTERM: time in-flight requests get to finish")

    emf_enabled: bool = Field(False, description="Write CloudWatch Embedded Metric Format lines to stdout")
    emf_namespace: str = Field("DeepCanvas", min_length=1, max_length=255)
    service_name: str = Field("deepcanvas", min_length=1, max_length=64)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError("store must be a file:// or s3:// URI")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        kind, _, index = value.partition(":")
        if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
            raise ValueError("device must be cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _check_sides(self) -> Settings:
        if self.stylize_max_side > self.stylize_max_side_limit:
            raise ValueError("stylize_max_side must not exceed stylize_max_side_limit")
        return self

    @property
    def uses_torch(self) -> bool:
        """Whether any model runs on torch (else the service never imports it)."""
        return "torch" in (self.detector_backend, self.classifier_backend, self.style_backend)

    def runtime(self, backend: Backend) -> Runtime:
        """How an ONNX backend runs its networks: engine, threads, precision."""
        assert backend != "torch", "the torch backend has no ONNX runtime"
        engine: Engine = "openvino" if backend == "openvino" else "onnxruntime"
        return Runtime(engine, self.onnx_threads, self.openvino_precision)

    @cached_property
    def model_refs(self) -> dict[Role, tuple[str, str]]:
        """Each role's (name, version-or-alias)."""
        return {role: split_model_ref(getattr(self, role)) for role in ROLES}
