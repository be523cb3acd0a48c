"""Service settings: one pydantic-settings class, prefix ``DEEPCANVAS_``, injected, validated at start."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.auth import MIN_KEY_LENGTH, plain_secret, split_keys
from models.artifact import check_safe_name
from models.onnx_backend import Engine, Precision, Runtime

EMBEDDED_STORE = Path(__file__).resolve().parent.parent / "models" / "store"

Role = Literal["detector", "classifier", "style", "gallery", "embedder"]
# torch runs the networks from safetensors weights; onnx runs ONNX Runtime and openvino runs OpenVINO on
# the artifact's exported .onnx files (``deepcanvas models export``): neither needs torch or ultralytics.
# auto (the default) picks, per artifact, OpenVINO where installed, else ONNX Runtime, else torch, and only
# where the artifact has its ONNX files (``app.engines``).
Backend = Literal["auto", "torch", "onnx", "openvino"]
BACKEND_HELP = "auto (OpenVINO, else ONNX Runtime, where the artifact has its ONNX files; else torch), torch, onnx"
ROLES: tuple[Role, ...] = ("detector", "classifier", "style", "gallery", "embedder")
# Roles a store may lack: the service then runs without them (state "absent", readiness unaffected) and their
# routes answer 503 saying so. The embedder is one: stores made before identity have no face-embedder.
OPTIONAL_ROLES: frozenset[Role] = frozenset({"embedder"})
# Chosen by `python -m bench.batch_cost` (per-image cost of a batch against single calls, in-process, default
# engines; indicative: two runs on a busy 2-core machine, docs/benchmarks-history.md): the detector's image costs 19-32%
# less in a batch of 4 (a batch of 8, a little cheaper still, widened the tail at 16 clients before), the
# classifier's 45-61% less in a batch of 8, AdaIN's no less (its predictor runs requests one by one). A slot not
# listed gets the runtime parameters' limits, which also cap these.
BATCH_LIMITS: dict[str, tuple[int, float]] = {"detector": (4, 2.0), "classifier": (8, 2.0), "style": (1, 0.0)}


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


def postgresql_url(parts: dict[str, Any]) -> str:
    """``postgresql+psycopg://USER:PASSWORD@HOST:PORT/NAME`` from the ``database_*`` settings, each part
    percent-encoded (a generated password may hold ``@``, ``:`` or ``/``)."""

    def part(key: str, default: object = "") -> str:
        value = parts.get(key, default)
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value or "")
        return quote(text, safe="")

    user, password = part("database_user"), part("database_password")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host, port, name = part("database_host"), part("database_port", 5432), part("database_name", "deepcanvas")
    return f"postgresql+psycopg://{credentials}{host}:{port}/{name}"


DEFAULT_PORTS = {"http": 80, "https": 443}


def web_origin(text: str) -> str:
    """An origin as browsers send it (``https://app.example.com``, ``http://127.0.0.1:3000``), or ``*``.

    Browsers compare origins exactly: a trailing slash and the scheme's own port are dropped and scheme and
    host lower-cased (``urlsplit`` lower-cases the host); a path,
    query, credentials or another scheme would never match, so they are refused at start."""
    text = text.strip()
    if text == "*":
        return text
    parts = urlsplit(text)
    wrong = f"cors_origins: {text!r} is not an origin (scheme://host[:port], e.g. https://app.example.com)"
    try:
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise ValueError(wrong) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError(wrong)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"cors_origins: {text!r} has more than an origin; browsers send only scheme://host[:port]")
    scheme, host = parts.scheme.lower(), f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown = port is not None and port != DEFAULT_PORTS[scheme]  # browsers leave a scheme's own port out
    return f"{scheme}://{host}" + (f":{port}" if shown else "")


def default_cache_dir() -> Path:
    """Per user, never shared: ``$XDG_CACHE_HOME/deepcanvas``, else ``~/.cache/deepcanvas``.

    It was ``/tmp/deepcanvas-cache``, readable by every local user (enrolled names and face descriptors live in
    its SQLite database), and any of them could create it first and own what the service later verified.
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home (an arbitrary uid in a container): a folder of this uid's own
            return Path(tempfile.gettempdir()) / f"deepcanvas-cache-{os.getuid()}"
    return Path(base) / "deepcanvas"


class Settings(BaseSettings):
    """Everything configurable; environment variables are ``DEEPCANVAS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DEEPCANVAS_", extra="ignore", frozen=True, hide_input_in_errors=True)

    store: str = Field(EMBEDDED_STORE.as_uri(), description="Model store URI: file:///path or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(None, description="Endpoint of an S3-compatible server")
    s3_region: str = "us-east-1"
    store_timeout_s: float = Field(10.0, gt=0, le=300, description="Connect and read timeout per store call")
    store_retries: int = Field(5, ge=0, le=100, description="Retries with backoff when the store is unreachable")
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="The verified models and, by default, the identity database; kept closed to other users (0700)",
    )

    detector: ModelRef = "face-detector:stable"
    classifier: ModelRef = "face-gender:stable"
    style: ModelRef = "adain:stable"
    gallery: ModelRef = "style-gallery:stable"
    embedder: ModelRef = "face-embedder:stable"

    device: str = Field("cpu", description="torch device: cpu, cuda or cuda:N")
    torch_threads: int = Field(0, ge=0, le=256, description="Intra-op threads; 0 keeps torch's default")
    detector_backend: Backend = Field("auto", description=f"Runs the detector: {BACKEND_HELP}, openvino")
    classifier_backend: Backend = Field("auto", description=f"Runs the classifier: {BACKEND_HELP}, openvino")
    style_backend: Backend = Field(
        "auto", description=f"Runs AdaIN: {BACKEND_HELP}, openvino (onnx and openvino disable method=nst)"
    )
    weights_precision: Literal["auto", "float32"] = Field(
        "auto",
        description="auto: an artifact's int8 ONNX files where its manifest's defaults.precision is int8; float32",
    )
    batch_limits: dict[str, tuple[int, float]] = Field(
        default_factory=lambda: dict(BATCH_LIMITS),
        description="Per model slot: (most items per micro-batch, ms a busy model waits for more); runtime "
        "parameters batch_max_size and batch_max_wait_ms cap them",
    )
    embedder_backend: Backend = Field("auto", description=f"Runs the face embedder: {BACKEND_HELP}, openvino")
    onnx_threads: int = Field(
        0, ge=0, le=256, description="Intra-op threads per ONNX Runtime or OpenVINO model; 0 keeps the engine's"
    )
    openvino_precision: Precision = Field(
        "auto",
        description="OpenVINO inference precision: auto (bf16 on CPUs with AMX or AVX-512 BF16, else f32), f32, bf16",
    )
    detector_streams: int = Field(
        2,
        ge=1,
        le=8,
        description="OpenVINO: the RFB detector runs a micro-batch's photos on this many streams at once "
        "(a second compiled model; single photos keep the latency one); 1 runs them one after another",
    )
    detector_views: bool = Field(
        True,
        description="The RFB detector reads each photo at the input shape nearest its aspect, where the artifact "
        "ships view graphs (docs/detector.md, 'Views'); false: its authors' graphs at their one documented input",
    )
    warmup: bool = True

    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest request body in bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest decoded image, width × height")
    body_timeout_s: float = Field(60.0, gt=0, le=3600, description="Longest time a request body may take to arrive")
    min_side: int = Field(16, ge=1, description="Smallest accepted image side in pixels")
    queue_size: int = Field(32, ge=1, le=10_000, description="Requests waiting per model before 503")

    freeze_heap: bool = Field(
        True,
        description="Once the models are loaded, keep everything loaded out of the garbage collector's full "
        "collections (gc.freeze): under load those stalled requests for tens to hundreds of milliseconds",
    )
    lean_forms: bool = Field(
        True,
        description="Serve a plainly well-formed /classify or /detect request on the lean form path "
        "(app.fastpath): 0.4-0.45 ms less per request in docs/benchmarks.md's run R; "
        "false: FastAPI reads every request",
    )
    stylize_max_side: int = Field(1024, ge=32, le=8192, description="Default bound on a stylized image's side")
    stylize_max_side_limit: int = Field(2048, ge=32, le=8192, description="Largest max_side a client may ask")
    nst_max_side: int = Field(512, ge=32, le=2048, description="Bound on the side of an NST output")
    nst_iterations: int = Field(500, ge=1, le=2000, description="Most L-BFGS steps of classical NST")
    nst_max_seconds: float = Field(55.0, gt=0, le=600, description="Most seconds of one NST optimisation")
    nst_queue_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Most NST paintings a replica runs or holds at once; one more is refused at once (503, with the "
        "Retry-After of when one ends), since a request waiting behind a painting of up to nst_max_seconds would "
        "pass a load balancer's idle timeout (60 s) before its own began",
    )

    admin_token: SecretStr | None = Field(
        None, description="Bearer token of /admin and enrolment, at least 16 characters; unset disables them"
    )
    api_keys: SecretStr | None = Field(
        None,
        description="Keys that /detect, /classify, /identify, /verify and /stylize require (Authorization: Bearer"
        " KEY), comma-separated, each at least 16 characters; unset leaves them open",
    )
    params_poll_s: float = Field(10.0, gt=0, le=3600, description="How often replicas re-read the store's documents")
    grace_period_s: float = Field(20.0, ge=0, le=600, description="SIGTERM: time in-flight requests get to finish")

    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the identity database (postgresql+psycopg://user:pass@host/db); "
        "unset: a SQLite file identities.sqlite3 in cache_dir",
    )
    identity_poll_s: float = Field(
        5.0, gt=0, le=3600, description="How often each replica reads new and deleted enrolments from the database"
    )
    # On ECS the database arrives in parts (host, port and name as environment, user and password as secrets
    # from Secrets Manager): the URL is assembled from them when DATABASE_URL itself is not set.
    database_host: str | None = Field(None, description="PostgreSQL host; builds database_url when that is unset")
    database_port: int = Field(5432, ge=1, le=65535, description="PostgreSQL port (with database_host)")
    database_name: str = Field("deepcanvas", min_length=1, description="PostgreSQL database (with database_host)")
    database_user: str | None = Field(None, description="PostgreSQL user (with database_host)")
    database_password: SecretStr | None = Field(None, description="PostgreSQL password (with database_host)")

    emf_enabled: bool = Field(False, description="Write CloudWatch Embedded Metric Format lines to stdout")
    emf_namespace: str = Field("DeepCanvas", min_length=1, max_length=255)
    service_name: str = Field("deepcanvas", min_length=1, max_length=64)

    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Web origins whose pages may call the API from a browser (CORS): comma-separated"
        " scheme://host[:port], or *; empty (the default) sends no CORS headers",
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="before")
    @classmethod
    def _database_url_from_parts(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("database_url") and data.get("database_host"):
            return {**data, "database_url": postgresql_url(data)}
        return data

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if not (value.startswith("file://") or value.startswith("s3://")):
            raise ValueError("store must be a file:// or s3:// URI")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            # A password with an unencoded "@" (a generated one) moved its tail into the host, which the logs show
            # (``describe`` hides the password, not the host), and ":" after it made a ValueError quoting a piece
            # of it. Neither message below repeats any of the URL.
            encode = (
                "percent-encode the user and password (urllib.parse.quote(password, safe='')), or set "
                "DEEPCANVAS_DATABASE_HOST, DEEPCANVAS_DATABASE_USER and DEEPCANVAS_DATABASE_PASSWORD instead "
                "(encoded for you)"
            )
            try:
                url = make_url(value.get_secret_value())
            except (ArgumentError, ValueError):
                raise ValueError(f"database_url is not a SQLAlchemy URL: {encode}") from None
            backend = url.get_backend_name()
            if backend not in ("sqlite", "postgresql"):
                raise ValueError(f"database_url: {backend} is not supported; use sqlite or postgresql(+psycopg)")
            if backend == "postgresql" and "@" in (url.host or ""):
                raise ValueError(f"database_url: its password or user holds an unencoded '@': {encode}")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _check_cors_origins(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(dict.fromkeys(web_origin(str(item)) for item in items if str(item).strip()))

    @field_validator("api_keys", "admin_token", mode="before")
    @classmethod
    def _check_secrets(cls, value: Any, info: ValidationInfo) -> Any:
        """API keys and the admin token: each as long and plain as ``auth.plain_secret`` asks (the token enrols
        people, switches models and changes parameters); an empty variable (compose's ``${...:-}``) is unset,
        which leaves the model routes open, or /admin off."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        if not text.strip():
            return None
        if info.field_name == "api_keys":
            split_keys(text)
        elif not plain_secret(text):
            raise ValueError(f"admin_token must be at least {MIN_KEY_LENGTH} printable ASCII characters without spaces")
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
        """Whether a model may run on torch (explicitly, or ``auto`` with torch installed)."""
        backends = {value for name, value in self if name.endswith("_backend")}
        return "torch" in backends or ("auto" in backends and importlib.util.find_spec("torch") is not None)

    def runtime(self, backend: Backend | Engine, int8: bool = False) -> Runtime:
        """How an ONNX backend (or engine) runs its networks: engine, threads, precision, int8 files."""
        assert backend not in ("torch", "auto"), f"the {backend} backend has no one ONNX runtime"
        engine: Engine = "openvino" if backend == "openvino" else "onnxruntime"
        return Runtime(engine, self.onnx_threads, self.openvino_precision, int8, self.detector_streams)

    @property
    def identity_database_url(self) -> str:
        """The identity database's SQLAlchemy URL (with its password: never log it)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.cache_dir / 'identities.sqlite3'}"

    @cached_property
    def model_refs(self) -> dict[Role, tuple[str, str]]:
        """Each role's (name, version-or-alias)."""
        return {role: split_model_ref(getattr(self, role)) for role in ROLES}
