"""POST /classify: face classification, with or without face detection first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from app import services
from app.deps import ImageLimitsDep, ManagerDep, ParamsDep
from app.routers.detect import ConfField, ImageField, ImgszField, IouField, MaxDetField
from app.schemas import ERROR_RESPONSES, ClassifyResponse
from app.uploads import read_image

router = APIRouter(prefix="/classify", tags=["classify"])


@router.post("", response_model=ClassifyResponse, responses=ERROR_RESPONSES)
async def classify_faces(
    manager: ManagerDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    image: ImageField,
    detect_faces: Annotated[
        bool, Form(description="Detect faces first (true) or treat the whole image as one face crop (false)")
    ] = True,
    conf: ConfField = None,
    iou: IouField = None,
    max_det: MaxDetField = None,
    imgsz: ImgszField = None,
) -> ClassifyResponse:
    """Classify every detected face (or the whole image as one face) with label probabilities."""
    # Without detection the whole image is shrunk to the classifier's input: decode no more than needed.
    reduce_to = None if detect_faces else services.crop_decode_side(manager)
    decoded = await read_image(image, limits, "image", reduce_to)
    options = services.DetectOptions(conf=conf, iou=iou, max_det=max_det, imgsz=imgsz)
    return await services.classify(manager, params, decoded, detect_faces, options)
