"""POST /classify: face classification, with or without face detection first."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Form

from app import services
from app.deps import ImageLimitsDep, ManagerDep, ParamsDep
from app.forms import FormRoute
from app.routers.detect import ConfField, ImageField, ImgszField, IouField, MaxDetField, MinSizeField, TileField
from app.schemas import ERROR_RESPONSES, ClassifyResponse
from app.uploads import read_for_faces, read_image

router = APIRouter(prefix="/classify", tags=["classify"], route_class=FormRoute)


RESPONSIBLE_USE = (
    "Classify every detected face (or the whole image as one face) with label probabilities.\n\n"
    "**What the label means.** The label is the gender a face *appears to present* in this one photo, in the two "
    "classes of the model's training data (`female`, `male`); it is not a person's gender identity, sex or any "
    "other fact about them. `score` is the calibrated probability of the label: with `min_score` (or the runtime "
    "default `classifier_min_score`) a face scoring below it comes back as `unknown`, so unreliable answers can be "
    "skipped. Accuracy is lower for children, older people, profiles and small or blurred faces; the model card "
    "(`GET /models`) gives accuracy per slice.\n\n"
    "**Do not use it** to make or support decisions about people (access, hiring, policing, benefits, pricing, "
    "safety), to verify or infer identity, or to track or profile anyone."
)


@router.post("", response_model=ClassifyResponse, responses=ERROR_RESPONSES, description=RESPONSIBLE_USE)
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
    min_size: MinSizeField = None,
    tile: TileField = None,
    min_score: Annotated[
        float | None,
        Form(
            ge=0,
            le=1,
            allow_inf_nan=False,
            description="Faces whose score is below this are labelled `unknown`; default: the runtime parameter",
        ),
    ] = None,
) -> ClassifyResponse:
    """Classify every detected face (or the whole image as one face) with label probabilities."""
    options = services.DetectOptions(conf=conf, iou=iou, max_det=max_det, imgsz=imgsz, min_size=min_size, tile=tile)
    if not detect_faces:  # the whole image is shrunk to the classifier's input: decode no more than needed
        decoded = await read_image(image, limits, "image", services.crop_decode_side(manager))
        return await services.classify(manager, params, decoded, False, options, min_score)
    # A large JPEG decodes smaller, as for /detect; faces too small in it for the classifier get the whole decode.
    faces = await read_for_faces(image, limits, "image", partial(services.detect_reduction, manager, options))
    return await services.classify(manager, params, faces.image, True, options, min_score, faces.source, faces.whole)
