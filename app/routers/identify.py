"""POST /identify (who is in this photo?) and POST /verify (do two photos show the same person?)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form

from app.deps import GalleryDep, ImageLimitsDep, ManagerDep, ParamsDep
from app.forms import FormRoute
from app.identities import service
from app.identities.service import Photo
from app.routers.detect import ImageField
from app.schemas import ERROR_RESPONSES, IdentifyResponse, VerifyResponse
from app.services import in_order
from app.uploads import read_for_faces, upload_name

router = APIRouter(tags=["identify"], route_class=FormRoute)


@router.post("/identify", response_model=IdentifyResponse, responses=ERROR_RESPONSES)
async def identify(
    manager: ManagerDep,
    gallery: GalleryDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    image: ImageField,
    top_k: Annotated[
        int, Form(ge=1, le=100, description="Candidates per face at or above the threshold, best first")
    ] = 5,
    threshold: Annotated[
        float | None,
        Form(
            ge=-1,
            le=1,
            allow_inf_nan=False,
            description="Similarity a match needs: at least the calibrated one for the gallery's size (the default); "
            "it may be raised, not lowered",
        ),
    ] = None,
) -> IdentifyResponse:
    """Every face in the photo with its enrolled identity (null when none is similar enough) and candidates."""
    photo = Photo("image", await read_for_faces(image, limits, "image", service.photo_reduction(manager)))
    return await service.identify(manager, gallery, params, photo, top_k, threshold)


@router.post("/verify", response_model=VerifyResponse, responses=ERROR_RESPONSES)
async def verify(
    manager: ManagerDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    image_a: ImageField,
    image_b: ImageField,
    threshold: Annotated[
        float | None,
        Form(ge=0, le=2, allow_inf_nan=False, description="Largest distance still 'same'; default: the calibrated one"),
    ] = None,
) -> VerifyResponse:
    """Whether two photos show the same person (each photo's largest face, flagged when it had several)."""
    reduction = service.photo_reduction(manager)
    faces_a, faces_b = await in_order(
        read_for_faces(image_a, limits, "image_a", reduction), read_for_faces(image_b, limits, "image_b", reduction)
    )
    photo_a, photo_b = Photo(upload_name("image_a", image_a), faces_a), Photo(upload_name("image_b", image_b), faces_b)
    return await service.verify(manager, params, photo_a, photo_b, threshold)
