"""Response schemas, in small families; field descriptions and examples feed the OpenAPI page."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

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


class DetectResponse(BaseModel):
    model: ModelRef
    image: ImageSize
    detections: list[Detection]


class FaceResult(BaseModel):
    box: Box | None = Field(description="The face's box, or null when the whole image was one face crop")
    label: str = Field(examples=["female"])
    score: float = Field(ge=0, le=1, description="Probability of the chosen label", examples=[0.97])
    probabilities: dict[str, float] = Field(examples=[{"female": 0.97, "male": 0.03}])


class ClassifyResponse(BaseModel):
    model: ModelRef
    detector: ModelRef | None = Field(description="The detector that found the faces; null without detection")
    faces: list[FaceResult]


class StyleInfo(BaseModel):
    name: str = Field(examples=["ripples"])
    title: str = Field(examples=["Ripples"])
    description: str = ""
    url: str = Field(description="Where to fetch the style image", examples=["/styles/ripples/image"])


class StylesResponse(BaseModel):
    gallery: ModelRef
    styles: list[StyleInfo]


class ModelInfo(BaseModel):
    role: str = Field(examples=["detector"])
    name: str
    version: str
    task: str = Field(examples=["detect"])
    architecture: str = Field(examples=["yolov5s"])
    labels: list[str]
    metrics: dict[str, float]
    provenance: str = Field(description="How the weights were made")


class ModelsResponse(BaseModel):
    store: str
    models: list[ModelInfo]


class RoleState(BaseModel):
    name: str
    ref: str = Field(description="The configured version or alias")
    state: Literal["loading", "ready", "failed"]
    version: str | None = None
    detail: str | None = None


class Readiness(BaseModel):
    ready: bool
    draining: bool = Field(False, description="True after SIGTERM: finishing in-flight requests only")
    models: dict[str, RoleState]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorResponse(BaseModel):
    detail: str = Field(examples=["image: not a JPEG, PNG, WebP, BMP or GIF image"])


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Empty, truncated or corrupt image",
        413: "Upload or image too large",
        415: "Not a supported image format",
        422: "A parameter is missing or out of range",
        503: "Model loading or busy; see Retry-After",
    }.items()
}
