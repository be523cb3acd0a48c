"""The documents the service answers with, defined once: the service returns them, the client parses them.

Field descriptions and examples feed the service's OpenAPI page. Only pydantic here: a user's environment
that installs the client needs nothing of the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Box = tuple[float, float, float, float]


class ModelRef(BaseModel):
    name: str = Field(examples=["face-detector"])
    version: str = Field(examples=["v1"])


class ImageSize(BaseModel):
    width: int = Field(examples=[1280])
    height: int = Field(examples=[720])


class Detection(BaseModel):
    box: Box = Field(description="[x1, y1, x2, y2] in the original image's pixels", examples=[[10, 20, 90, 120]])
    score: float = Field(ge=0, le=1, examples=[0.91])
    label: str = Field(examples=["face"])
    landmarks: list[tuple[float, float]] | None = Field(
        None, description="With landmarks=true: the embedder's 5 points (x, y), dlib's order; absent otherwise"
    )


class DetectResponse(BaseModel):
    model: ModelRef
    image: ImageSize
    detections: list[Detection]


class FaceResult(BaseModel):
    box: Box | None = Field(description="The face's box, or null when the whole image was one face crop")
    label: str = Field(
        description="The gender the face appears to present, one of the model's labels; `unknown` when the score is "
        "below `min_score`. Never a person's identity.",
        examples=["female"],
    )
    score: float = Field(
        ge=0,
        le=1,
        description="Calibrated probability of the label (of the best label when `unknown`)",
        examples=[0.97],
    )
    probabilities: dict[str, float] = Field(examples=[{"female": 0.97, "male": 0.03}])


class ClassifyResponse(BaseModel):
    model: ModelRef
    detector: ModelRef | None = Field(description="The detector that found the faces; null without detection")
    faces: list[FaceResult]


class StyleInfo(BaseModel):
    name: str = Field(examples=["starry-night"])
    title: str = Field(examples=["The Starry Night"])
    description: str = ""
    artist: str | None = Field(
        None, description="A painting's artist (null for generated textures)", examples=["Vincent van Gogh"]
    )
    year: str | None = Field(None, description="When the painting was made", examples=["1889"])
    url: str = Field(description="Where to fetch the style image", examples=["/styles/starry-night/image"])


class NSTInfo(BaseModel):
    """Whether this service paints with ``method=nst`` (classical NST, slow) and within which bounds."""

    available: bool = Field(
        description="Whether POST /stylize takes method=nst here: it needs torch, which the slim image lacks",
        examples=[True],
    )
    reason: str | None = Field(
        None,
        description="Why method=nst is not available (null when it is)",
        examples=["method=nst needs torch (NST needs autograd); this service runs style_backend=openvino without it"],
    )
    max_side: int = Field(description="The largest max_side method=nst takes, and its default", examples=[512])
    max_seconds: float = Field(
        description="The largest max_seconds (time budget) method=nst takes, and its default", examples=[55.0]
    )


class StylesResponse(BaseModel):
    gallery: ModelRef
    styles: list[StyleInfo]
    nst: NSTInfo | None = Field(
        None,
        description="What method=nst offers here; every current service sends it (null only from a service older "
        "than this field)",
    )


class ModelInfo(BaseModel):
    role: str = Field(examples=["detector"])
    name: str
    version: str
    task: str = Field(examples=["detect"])
    architecture: str = Field(examples=["yolov5s"])
    labels: list[str]
    metrics: dict[str, float]
    provenance: str = Field(description="How the weights were made")
    engine: str | None = Field(None, description="What runs the network", examples=["openvino"])
    options: list[str] = Field(
        default_factory=list,
        description="Request options only some versions of this role take (style: `manner`)",
        examples=[["manner"]],
    )


class EngineInfo(BaseModel):
    """Which engine runs one model slot (a role's network, or NST beside AdaIN), at which precision, and why."""

    slot: str = Field(examples=["detector"])
    role: str = Field(examples=["detector"])
    engine: str = Field(examples=["openvino"], description="openvino, onnxruntime, torch, or none (no network)")
    precision: str = Field(examples=["float32"], description="The weights run: float32, int8, or none")
    reason: str = Field(examples=["auto: the fastest engine installed (openvino)"])


class ModelsResponse(BaseModel):
    store: str
    models: list[ModelInfo]
    engines: list[EngineInfo] = Field(default_factory=list, description="One entry per loaded model slot")


class RoleState(BaseModel):
    name: str
    ref: str = Field(
        description="The version or alias this model was last switched to: the configured one, the store's record "
        "of the chosen versions, or an activation; `version` is what it named then"
    )
    state: Literal["loading", "ready", "failed", "absent"] = Field(
        description="absent: an optional model (the face embedder) that the store does not have"
    )
    version: str | None = None
    detail: str | None = None


class Readiness(BaseModel):
    ready: bool
    draining: bool = Field(False, description="True after SIGTERM: finishing in-flight requests only")
    models: dict[str, RoleState]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["image: not a JPEG, PNG, WebP, BMP or GIF image"], description="For people")
    code: str = Field(
        examples=["unsupported_media_type"],
        description="For programs: which error this is (e.g. a 503's overloaded, model_not_ready or shutting_down)",
    )


SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class RuntimeParams(BaseModel):
    """What operators may change while the service runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    detector_conf: float | None = Field(None, ge=0, le=1, description="Default conf; null: the model's own")
    detector_iou: float | None = Field(None, ge=0, le=1, description="Default NMS IoU; null: the model's own")
    detector_max_det: int | None = Field(None, ge=1, le=1000, description="Default max_det; null: the model's")
    detector_min_size: float | None = Field(
        None, ge=0, le=10000, description="Default smallest face side in pixels; null: the model's"
    )
    classifier_threshold: float = Field(
        0.5, ge=0, le=1, description="Two-label classifiers answer the second label when its probability ≥ this"
    )
    classifier_min_score: float = Field(
        0.0, ge=0, le=1, description="Default min_score of POST /classify: a face scoring below it is 'unknown'"
    )
    stylize_alpha: float = Field(1.0, ge=0, le=1, description="Default alpha of POST /stylize")
    stylize_max_side: int = Field(1024, ge=32, le=8192, description="Default max_side of POST /stylize")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=1 << 30)
    max_pixels: int = Field(40_000_000, ge=1, le=1 << 31)
    min_side: int = Field(16, ge=1, le=4096)
    queue_size: int = Field(32, ge=1, le=10_000, description="Requests waiting per model before 503")
    batch_max_size: int = Field(8, ge=1, le=256, description="Most items one micro-batch runs together")
    batch_max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="How long a busy model waits for more items before running a batch"
    )


class Document(BaseModel):
    version: int = Field(0, ge=0)
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def etag(self) -> str:
        """The ETag the service sends with this document, and expects back in If-Match."""
        return f'"{self.version}"'


class ParamsDocument(Document):
    params: RuntimeParams


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is a 422, not ignored (as PATCH /admin/params does)

    version: str = Field(
        pattern=SAFE_NAME, description="A version or an alias in the configured store", examples=["v2"]
    )


class ActivateResponse(BaseModel):
    name: str
    role: str
    version: str
    previous: str | None


IDENTITY_NAME_MAX = 100


class IdentityInfo(BaseModel):
    id: str = Field(description="The identity's id", examples=["3f2a9c0d6b1e4f7a8c5d2e1f0a9b8c7d"])
    name: str = Field(examples=["Ada Lovelace"])
    faces: int = Field(description="Enrolled faces that /identify compares (made by the serving embedder)")
    stale_faces: int = Field(
        0,
        description="Faces made by another embedder version: kept, never compared; enrol new photos to use them",
    )
    created_at: datetime
    updated_at: datetime


class IdentityPage(BaseModel):
    identities: list[IdentityInfo]
    total: int = Field(description="Enrolled identities in all")
    limit: int
    offset: int


class IdentityMatch(BaseModel):
    id: str
    name: str
    similarity: float = Field(description="Cosine similarity of the descriptors, in [-1, 1]", examples=[0.93])


class IdentifiedFace(BaseModel):
    box: Box = Field(description="[x1, y1, x2, y2] in the original image's pixels")
    identity: IdentityMatch | None = Field(description="The best match, or null when it is below the threshold")
    candidates: list[IdentityMatch] = Field(
        description="Up to top_k enrolled identities at least as similar as the threshold, best first"
    )


class IdentifyResponse(BaseModel):
    model: ModelRef = Field(description="The embedder that made the descriptors")
    detector: ModelRef
    threshold: float = Field(description="The similarity a match needed")
    gallery_size: int = Field(description="Enrolled faces compared (the default threshold depends on it)")
    faces: list[IdentifiedFace] = Field(description="Every face found, in the detector's order; empty when none")


class VerifiedFace(BaseModel):
    box: Box
    faces_found: int = Field(description="Faces the detector found in this photo")
    largest: bool = Field(description="True when the photo had several faces and the largest was compared")


class VerifyResponse(BaseModel):
    same: bool = Field(description="distance <= threshold")
    distance: float = Field(description="Euclidean distance of the L2-normalised descriptors, in [0, 2]")
    threshold: float
    model: ModelRef
    a: VerifiedFace
    b: VerifiedFace
