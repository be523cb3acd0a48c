"""POST /detect: face detection."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, UploadFile

from app import services
from app.deps import ImageLimitsDep, ManagerDep, ParamsDep
from app.forms import FormRoute
from app.identities.service import Photo, add_landmarks
from app.schemas import ERROR_RESPONSES, DetectResponse
from app.uploads import read_for_faces, read_reduced

router = APIRouter(prefix="/detect", tags=["detect"], route_class=FormRoute)

ImageField = Annotated[UploadFile, File(description="A photo: JPEG, PNG, WebP, BMP or GIF (first frame)")]
ConfField = Annotated[
    float | None,
    Form(ge=0, le=1, allow_inf_nan=False, description="Minimum score; the model's default if absent", examples=[0.25]),
]
IouField = Annotated[
    float | None, Form(ge=0, le=1, allow_inf_nan=False, description="NMS IoU threshold", examples=[0.45])
]
MaxDetField = Annotated[int | None, Form(ge=1, le=1000, description="Most detections returned", examples=[100])]
MinSizeField = Annotated[
    float | None,
    Form(
        ge=0,
        le=10000,
        allow_inf_nan=False,
        description="Smallest face returned: boxes whose shorter side is below this many of the photo's pixels are "
        "dropped; 0 returns every box; default: the runtime parameter, else the model's",
        examples=[24],
    ),
]
TileField = Annotated[
    Literal["auto", "on", "off"] | None,
    Form(
        description="Read a large photo also as overlapping tiles, merged with the whole view (finds small faces; "
        "at most 5 network passes): auto (photos over the model's `tile_above` input sides, 1.5 unless its "
        "manifest says otherwise), on (over 1 input side) or off; default: the model's",
        examples=["auto"],
    ),
]
ImgszField = Annotated[
    int | None,
    Form(
        ge=32,
        le=1920,
        description="Inference size in pixels, rounded up to a multiple of 32, for detectors that take any size (the "
        "YOLO artifacts); the RFB detector (the default, GET /models: ultralight-rfb) reads fixed 640x480 and 320x240 "
        "views and ignores it",
        examples=[640],
    ),
]


@router.post("", response_model=DetectResponse, response_model_exclude_none=True, responses=ERROR_RESPONSES)
async def detect_faces(
    manager: ManagerDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    image: ImageField,
    conf: ConfField = None,
    iou: IouField = None,
    max_det: MaxDetField = None,
    imgsz: ImgszField = None,
    min_size: MinSizeField = None,
    landmarks: Annotated[bool, Form(description="Add the face embedder's 5 landmarks to every box")] = False,
    tile: TileField = None,
) -> DetectResponse:
    """Detect faces: boxes in the original image's pixels, with scores and labels."""
    options = services.DetectOptions(conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_size=min_size, tile=tile)
    # a large JPEG decodes at a smaller DCT scale where the detector's views lose nothing by it
    reduction = partial(services.detect_reduction, manager, options)
    if landmarks:  # the landmark model reads each face there too when it keeps the chip's side, else decoded whole
        faces = await read_for_faces(image, limits, "image", reduction)
        detected = await services.detect(manager, params, faces.image, options, faces.source)
        return await add_landmarks(manager, Photo("image", faces), detected)
    decoded, source = await read_reduced(image, limits, "image", reduction)
    return await services.detect(manager, params, decoded, options, source)
