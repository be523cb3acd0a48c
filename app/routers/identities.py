"""The enrolment gallery: /identities (admin token). Names and descriptors of people are personal data, so
listing them needs the token too; /identify and /verify (``app.routers.identify``) do not."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile

from app.deps import GalleryDep, ImageLimitsDep, ManagerDep, ParamsDep
from app.errors import InvalidParameter
from app.identities import service
from app.identities.form_text import Utf8FormRoute
from app.identities.service import Photo
from app.imaging import ImageLimits
from app.manager import ModelManager
from app.routers.admin import AdminDep
from app.schemas import ERROR_RESPONSES, ErrorResponse, IdentityInfo, IdentityPage
from app.services import in_order
from app.uploads import read_for_faces, upload_name
from deepcanvas.schemas import IDENTITY_NAME_MAX

# Utf8FormRoute: a name that is not UTF-8 reaches check_name as such, not re-read as latin-1 (form_text).
router = APIRouter(prefix="/identities", tags=["identities"], route_class=Utf8FormRoute)
audit = logging.getLogger("deepcanvas.audit")

MAX_PHOTOS = 20
ID_PATTERN = r"^[A-Za-z0-9_-]+$"  # the gallery's ids are uuid4 hex; no other character can name one
IdentityId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="The id POST /identities returned")
]
Photos = Annotated[
    list[UploadFile], File(description=f"1 to {MAX_PHOTOS} photos of the person, exactly one face in each")
]
SamePersonCheck = Annotated[
    bool,
    Form(
        description="Refuse photos whose faces look like different people (422 `different_people`, nothing "
        "stored): each face must be linked to the person (the identity's enrolled faces of the serving embedder; "
        "for a new identity, or one enrolled only under an older embedder, the largest group of the photos, none "
        "when groups tie) by faces each within the face embedder's calibrated /verify distance of the next. false "
        "stores them as sent",
    ),
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"model": ErrorResponse, "description": "Missing admin token (403: a wrong one)"},
    404: {"model": ErrorResponse, "description": "No such identity"},
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    504: {
        "model": ErrorResponse,
        "description": "The identity database did not answer within 20 s and the change may still be saved: the "
        "detail says what to check before sending it again (no Retry-After)",
    },
}


def audited(event: str, who: str, identity_id: str, **details: object) -> None:
    """An audit line for a change to the gallery, naming the identity by id: never the person's name, which a
    deletion erases from the database but could not erase from the logs."""
    fields = {"event": f"identity.{event}", "who": who, "identity": identity_id, **details}
    audit.info("identity %s %s", identity_id, event, extra={"fields": fields})


async def read_photos(uploads: list[UploadFile], limits: ImageLimits, manager: ModelManager) -> list[Photo]:
    if not 1 <= len(uploads) <= MAX_PHOTOS:
        raise InvalidParameter(f"image: send 1 to {MAX_PHOTOS} photos, not {len(uploads)}")
    reduction = service.photo_reduction(manager)
    fields = [upload_name("image", u, f"image #{i + 1}") for i, u in enumerate(uploads)]
    decoded = await in_order(*(read_for_faces(u, limits, f, reduction) for u, f in zip(uploads, fields, strict=True)))
    return [Photo(field, faces) for field, faces in zip(fields, decoded, strict=True)]


async def name_checked_first(who: AdminDep, request: Request) -> None:
    """The form's ``name`` checked (after the token) before FastAPI validates it: FastAPI reads an empty value
    as a missing one ("name: Field required"), and pydantic refuses undecodable bytes in words that hide why."""
    name = (await request.form()).get("name")  # the form FastAPI parses anyway, read once
    if isinstance(name, str):
        service.check_name(name)


@router.post(
    "",
    status_code=201,
    response_model=IdentityInfo,
    responses=WRITE_RESPONSES,
    dependencies=[Depends(name_checked_first)],
)
async def enrol(
    who: AdminDep,
    manager: ManagerDep,
    gallery: GalleryDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    name: Annotated[
        str,
        Form(
            max_length=IDENTITY_NAME_MAX,
            description=f"1 to {IDENTITY_NAME_MAX} characters of UTF-8: no control characters, bidirectional "
            "controls or zero-width spaces (ZWJ and ZWNJ are fine)",
            examples=["Ada Lovelace"],
        ),
    ],
    image: Photos,
    same_person_check: SamePersonCheck = True,
) -> IdentityInfo:
    """Enrol a person: a name and photos with exactly one face each (only descriptors are stored)."""
    photos = await read_photos(image, limits, manager)
    enrolled = await service.enrol(manager, gallery, params, name, photos, same_person_check)
    audited("enrolled", who, enrolled.id, faces=enrolled.faces, same_person_check=same_person_check)
    return enrolled


@router.post("/{identity_id}/faces", response_model=IdentityInfo, responses=WRITE_RESPONSES)
async def add_faces(
    who: AdminDep,
    manager: ManagerDep,
    gallery: GalleryDep,
    params: ParamsDep,
    limits: ImageLimitsDep,
    identity_id: IdentityId,
    image: Photos,
    same_person_check: SamePersonCheck = True,
) -> IdentityInfo:
    """Add photos of an enrolled person."""
    photos = await read_photos(image, limits, manager)
    changed = await service.add_faces(manager, gallery, params, identity_id, photos, same_person_check)
    audited("faces_added", who, changed.id, faces=changed.faces, same_person_check=same_person_check)
    return changed


@router.get("", response_model=IdentityPage, responses=RESPONSES)
async def list_identities(
    who: AdminDep,
    manager: ManagerDep,
    gallery: GalleryDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Identities per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Identities to skip")] = 0,
) -> IdentityPage:
    """Enrolled identities, oldest first, a page at a time."""
    return await service.list_identities(manager, gallery, limit, offset)


@router.get("/{identity_id}", response_model=IdentityInfo, responses=RESPONSES)
async def get_identity(
    who: AdminDep, manager: ManagerDep, gallery: GalleryDep, identity_id: IdentityId
) -> IdentityInfo:
    """One enrolled identity."""
    return await service.get_identity(manager, gallery, identity_id)


@router.delete("/{identity_id}", status_code=204, response_class=Response, responses=WRITE_RESPONSES)
async def delete_identity(who: AdminDep, gallery: GalleryDep, identity_id: IdentityId) -> Response:
    """Delete a person: name and descriptors erased; no replica matches them after its next poll."""
    await gallery.delete(identity_id)
    audited("deleted", who, identity_id)
    return Response(status_code=204)
