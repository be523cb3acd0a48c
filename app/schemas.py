"""Response schemas, in small families; field descriptions and examples feed the OpenAPI page.

The documents themselves live in ``deepcanvas.schemas``, which the Python client shares; this module
re-exports them for the service and adds what only the OpenAPI page needs.
"""

from __future__ import annotations

from typing import Any

from deepcanvas.schemas import (
    ActivateRequest,
    ActivateResponse,
    Box,
    ClassifyResponse,
    Detection,
    DetectResponse,
    EngineInfo,
    ErrorResponse,
    FaceResult,
    Health,
    IdentifiedFace,
    IdentifyResponse,
    IdentityInfo,
    IdentityMatch,
    IdentityPage,
    ImageSize,
    ModelInfo,
    ModelRef,
    ModelsResponse,
    NSTInfo,
    ParamsDocument,
    Readiness,
    RoleState,
    RuntimeParams,
    StyleInfo,
    StylesResponse,
    VerifiedFace,
    VerifyResponse,
)

__all__ = [
    "ERROR_RESPONSES",
    "ActivateRequest",
    "ActivateResponse",
    "Box",
    "ClassifyResponse",
    "DetectResponse",
    "Detection",
    "EngineInfo",
    "ErrorResponse",
    "FaceResult",
    "Health",
    "IdentifiedFace",
    "IdentifyResponse",
    "IdentityInfo",
    "IdentityMatch",
    "IdentityPage",
    "ImageSize",
    "ModelInfo",
    "ModelRef",
    "ModelsResponse",
    "NSTInfo",
    "ParamsDocument",
    "Readiness",
    "RoleState",
    "RuntimeParams",
    "StyleInfo",
    "StylesResponse",
    "VerifiedFace",
    "VerifyResponse",
]

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
