"""What the identity endpoints do, between the routers (HTTP) and the manager's detector and embedder.

A photo becomes faces by the service's detector (``face-detector:stable``), each face a descriptor by the
embedder role (``face-embedder:stable``); enrolments go to the gallery (database + index), queries to the
index. Descriptors are only ever compared with descriptors of the same embedder version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

import numpy as np

from app.errors import DifferentPeople, InvalidParameter, ModelNotReady
from app.identities.gallery import IdentityGallery
from app.identities.names import check_name
from app.identities.repository import IdentityRecord
from app.identities.same_person import unlinked
from app.identities.thresholds import Thresholds, thresholds_of
from app.manager import ModelManager, ModelSlot
from app.runtime import RuntimeParams
from app.schemas import (
    DetectResponse,
    IdentifiedFace,
    IdentifyResponse,
    IdentityInfo,
    IdentityMatch,
    IdentityPage,
    VerifiedFace,
    VerifyResponse,
)
from app.services import DetectOptions, detect, detect_reduction, face_source, in_order, model_ref, scaled_box
from app.uploads import ForFaces
from deepcanvas.schemas import Box
from models.identity.types import EmbedRequest, FaceEmbedding


@dataclass(frozen=True)
class Photo:
    """An uploaded photo, decoded for the detector and whole on demand (``uploads.ForFaces``)."""

    field: str  # how the error names it: the upload's file name, or the form field
    faces: ForFaces


def photo_reduction(manager: ModelManager) -> Callable[[int, int], int]:
    """How many times smaller a photo may decode for the service's detector at its defaults (``read_for_faces``)."""
    return partial(detect_reduction, manager, DetectOptions())


def embedder_slot(manager: ModelManager) -> ModelSlot:
    """The embedder's slot, or a 503 saying why identity is unavailable."""
    slot = manager.slots.get("embedder")
    if slot is None:
        status = manager.status["embedder"]
        why = status.detail or f"{status.name}:{status.ref} is {status.state}"
        raise ModelNotReady(f"identity needs the face embedder, which is not loaded: {why}")
    return slot


def embedder_id(slot: ModelSlot) -> str:
    """The version stamp stored with each descriptor."""
    return f"{slot.manifest.name}/{slot.manifest.version}"


def embedder_version(manager: ModelManager) -> str | None:
    """The serving embedder's version stamp, or None while it is not loaded."""
    slot = manager.slots.get("embedder")
    return embedder_id(slot) if slot is not None else None


async def _detect(manager: ModelManager, params: RuntimeParams, photo: Photo) -> DetectResponse:
    return await detect(manager, params, photo.faces.image, DetectOptions(), photo.faces.source)


async def _boxes(manager: ModelManager, params: RuntimeParams, photo: Photo) -> list[Box]:
    return [d.box for d in (await _detect(manager, params, photo)).detections]


async def _embed(slot: ModelSlot, pairs: list[tuple[Photo, Box]], descriptor: bool = True) -> list[FaceEmbedding]:
    """Each face's landmarks (in its photo's pixels) and descriptor.

    A photo decoded smaller gives the embedder its faces from that decode when each of them keeps the chip's
    side there (``face_source``), else from the photo decoded whole.
    """
    least = slot.manifest.input.size if slot.manifest.input else None
    photos: dict[int, tuple[np.ndarray, float, float]] = {}
    for photo in {id(p): p for p, _ in pairs}.values():
        boxes = [box for p, box in pairs if p is photo]
        faces = photo.faces
        image, scale_x, scale_y = await face_source(faces.image, faces.source, boxes, least, faces.whole)
        photos[id(photo)] = (np.asarray(image), scale_x, scale_y)  # (H, W, 3) uint8 RGB, once per photo
    requests = []
    for photo, box in pairs:
        array, scale_x, scale_y = photos[id(photo)]
        requests.append(EmbedRequest(image=array, box=scaled_box(box, scale_x, scale_y), descriptor=descriptor))
    embeddings = await slot.predict(requests)
    scales = [np.array(photos[id(photo)][1:], np.float32) for photo, _ in pairs]
    return [replace(e, landmarks=e.landmarks / scale) for e, scale in zip(embeddings, scales, strict=True)]


async def _one_face_each(
    manager: ModelManager, slot: ModelSlot, params: RuntimeParams, photos: list[Photo]
) -> list[np.ndarray]:
    """Each photo's single face's descriptor from ``slot``; a photo with no face or several is a 422 naming it.

    The caller looks the embedder's slot up once, so the descriptors, the stored faces they are compared with, the
    threshold and the version they are stored under are one embedder's, even when a switch lands meanwhile."""
    pairs = []
    detected = await in_order(*(_boxes(manager, params, photo) for photo in photos))  # in shared batches
    for photo, boxes in zip(photos, detected, strict=True):
        if len(boxes) != 1:
            found = "no face" if not boxes else f"{len(boxes)} faces"
            raise InvalidParameter(f"{photo.field}: {found} found; an enrolment photo needs exactly one face")
        pairs.append((photo, boxes[0]))
    return [_descriptor(e) for e in await _embed(slot, pairs)]


def _check_same_person(
    photos: list[Photo], descriptors: list[np.ndarray], stored: list[np.ndarray], limit: float
) -> None:
    """A 422 (``DifferentPeople``) naming each photo whose face is not linked to the person within ``limit``, the
    embedder's calibrated /verify distance (``same_person``), before anything is stored."""
    new = np.stack(descriptors)  # (P, D)
    refused = unlinked(new, np.array(stored, np.float32).reshape(-1, new.shape[1]), limit)  # stored: (S, D)
    if refused:
        fields = ", ".join(photos[i].field for i, _ in refused)
        found = ", ".join(f"{distance:.4f}" for _, distance in refused)
        whom = "the enrolled person's faces" if stored else "the other photos"
        raise DifferentPeople(
            f"{fields}: not the same person as {whom} (distance to the nearest face: {found}; the face embedder's "
            f"calibrated distance for one person, as /verify decides, is at most {limit:.4f}); nothing was stored. "
            "Check the photos, or send same_person_check=false to store them as one person anyway"
        )


def _descriptor(embedding: FaceEmbedding) -> np.ndarray:
    assert embedding.descriptor is not None, "the embedder returned no descriptor although one was asked"
    return embedding.descriptor


def _utc(moment: datetime) -> datetime:
    """SQLite returns stored times without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def identity_info(record: IdentityRecord) -> IdentityInfo:
    return IdentityInfo(
        id=record.id,
        name=record.name,
        faces=record.faces,
        stale_faces=record.other_faces,
        created_at=_utc(record.created_at),
        updated_at=_utc(record.updated_at),
    )


async def enrol(
    manager: ModelManager,
    gallery: IdentityGallery,
    params: RuntimeParams,
    name: str,
    photos: list[Photo],
    same_person_check: bool = True,
) -> IdentityInfo:
    name = check_name(name)
    slot = embedder_slot(manager)
    descriptors = await _one_face_each(manager, slot, params, photos)
    if same_person_check:
        _check_same_person(photos, descriptors, [], thresholds(slot).verify_distance)
    return identity_info(await gallery.enrol(name, descriptors, embedder_id(slot)))


async def add_faces(
    manager: ModelManager,
    gallery: IdentityGallery,
    params: RuntimeParams,
    identity_id: str,
    photos: list[Photo],
    same_person_check: bool = True,
) -> IdentityInfo:
    slot = embedder_slot(manager)
    embedder = embedder_id(slot)
    stored = await gallery.descriptors(identity_id, embedder)  # 404 before any inference for an unknown id
    descriptors = await _one_face_each(manager, slot, params, photos)
    if same_person_check:
        _check_same_person(photos, descriptors, stored, thresholds(slot).verify_distance)
    return identity_info(await gallery.add_faces(identity_id, descriptors, embedder))


async def list_identities(manager: ModelManager, gallery: IdentityGallery, limit: int, offset: int) -> IdentityPage:
    records, total = await gallery.page(limit, offset, embedder_id(embedder_slot(manager)))
    return IdentityPage(identities=[identity_info(r) for r in records], total=total, limit=limit, offset=offset)


async def get_identity(manager: ModelManager, gallery: IdentityGallery, identity_id: str) -> IdentityInfo:
    return identity_info(await gallery.get(identity_id, embedder_id(embedder_slot(manager))))


def thresholds(slot: ModelSlot) -> Thresholds:
    return thresholds_of(slot.manifest)


def identify_limit(slot: ModelSlot, gallery_size: int, threshold: float | None) -> float:
    """The similarity a match needs: the calibrated one for the gallery's size, or a caller's stricter one.

    A caller may raise it, never lower it: /identify is open (or guarded by an API key only), and a lower threshold
    would answer with the names of enrolled people who are not in the photo.
    """
    calibrated = thresholds(slot).identify_similarity(gallery_size)
    if threshold is not None and threshold < calibrated:
        raise InvalidParameter(
            f"threshold: at least {calibrated:.3f}, the calibrated one for {gallery_size} enrolled faces; it may be "
            "raised, not lowered (a lower one would name people who are not in the photo)"
        )
    return calibrated if threshold is None else threshold


async def identify(
    manager: ModelManager,
    gallery: IdentityGallery,
    params: RuntimeParams,
    photo: Photo,
    top_k: int,
    threshold: float | None,
) -> IdentifyResponse:
    """Every face in the photo, matched against the enrolled faces of the serving embedder version; a photo
    without a face is an answer too (no faces), as for /detect and /classify."""
    slot = embedder_slot(manager)
    await gallery.ensure_index(embedder_id(slot))  # before the first poll, or for a new embedder version
    index = gallery.loaded_index()
    detected = await _detect(manager, params, photo)
    boxes = [d.box for d in detected.detections]
    embeddings = await _embed(slot, [(photo, b) for b in boxes]) if boxes else []
    limit = identify_limit(slot, index.size, threshold)
    queries = np.stack([_descriptor(e) for e in embeddings]) if embeddings else np.zeros((0, index.dim), np.float32)
    faces = []
    for box, matches in zip(boxes, index.search(queries, top_k), strict=True):
        # Only people the threshold would name: below it, a name says who is enrolled, not who is in the photo.
        candidates = [
            IdentityMatch(id=m.identity_id, name=m.name, similarity=m.similarity)
            for m in matches
            if m.similarity >= limit
        ]
        faces.append(IdentifiedFace(box=box, identity=candidates[0] if candidates else None, candidates=candidates))
    return IdentifyResponse(
        model=model_ref(slot), detector=detected.model, threshold=limit, gallery_size=index.size, faces=faces
    )


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


async def _largest_face(manager: ModelManager, params: RuntimeParams, photo: Photo) -> tuple[Box, VerifiedFace]:
    boxes = await _boxes(manager, params, photo)
    if not boxes:
        raise InvalidParameter(f"{photo.field}: no face found; /verify compares one face of each photo")
    box = max(boxes, key=_area)
    return box, VerifiedFace(box=box, faces_found=len(boxes), largest=len(boxes) > 1)


async def verify(
    manager: ModelManager, params: RuntimeParams, photo_a: Photo, photo_b: Photo, threshold: float | None
) -> VerifyResponse:
    """Whether two photos show the same person: one face each, or each photo's largest face (flagged)."""
    slot = embedder_slot(manager)
    (box_a, face_a), (box_b, face_b) = await in_order(
        _largest_face(manager, params, photo_a), _largest_face(manager, params, photo_b)
    )
    a, b = await _embed(slot, [(photo_a, box_a), (photo_b, box_b)])
    distance = float(np.linalg.norm(_descriptor(a) - _descriptor(b)))
    # + 0.0: a distance threshold of -0 (which the form accepts as 0) is echoed as 0, not -0.0
    limit = threshold + 0.0 if threshold is not None else thresholds(slot).verify_distance
    return VerifyResponse(
        same=distance <= limit, distance=distance, threshold=limit, model=model_ref(slot), a=face_a, b=face_b
    )


async def add_landmarks(manager: ModelManager, photo: Photo, detected: DetectResponse) -> DetectResponse:
    """``detected`` with the embedder's 5 landmarks on every box."""
    slot = embedder_slot(manager)
    embeddings = await _embed(slot, [(photo, d.box) for d in detected.detections], descriptor=False)
    detections = [
        d.model_copy(update={"landmarks": [(float(x), float(y)) for x, y in e.landmarks]})
        for d, e in zip(detected.detections, embeddings, strict=True)
    ]
    return detected.model_copy(update={"detections": detections})
