"""The identity calls of ``Client`` and ``AsyncClient``: enrol people, list and delete them, identify, verify.

Mixins, so the two clients get the same methods without growing past one screen each; both provide
``send`` and ``_admin`` (enrolment and listing need the admin token, identify and verify do not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from deepcanvas import calls
from deepcanvas.calls import Call, ImageInput
from deepcanvas.schemas import IdentifyResponse, IdentityInfo, IdentityPage, VerifyResponse

T = TypeVar("T")
Images = ImageInput | Sequence[ImageInput]


class IdentityMethods:
    def send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def _admin(self) -> dict[str, str]:
        raise NotImplementedError

    def enrol(self, name: str, images: Images, same_person_check: bool = True) -> IdentityInfo:
        """Enrol a person from photos with exactly one face each (admin); never retried (it is not idempotent): after
        a 502 or a 504 whether it was saved is not known, so look (``identities``) before enrolling them again.
        Photos whose faces look like different people are refused (``InvalidParameter``, code ``different_people``)
        unless ``same_person_check`` is false."""
        return self.send(calls.enrol(self._admin(), name, images, same_person_check))

    def add_faces(self, identity_id: str, images: Images, same_person_check: bool = True) -> IdentityInfo:
        """More photos of an enrolled person (admin), refused as ``enrol``'s are when they look like someone else."""
        return self.send(calls.add_faces(self._admin(), identity_id, images, same_person_check))

    def identities(self, limit: int = 100, offset: int = 0) -> IdentityPage:
        return self.send(calls.identities(self._admin(), limit, offset))

    def identity(self, identity_id: str) -> IdentityInfo:
        return self.send(calls.identity(self._admin(), identity_id))

    def delete_identity(self, identity_id: str) -> None:
        """Delete a person (admin). Retried as a read is (deleting twice changes nothing more); a retry's 404 after a
        502 or a dropped connection, when the first attempt may have deleted them, is success: they are gone."""
        self.send(calls.delete_identity(self._admin(), identity_id))

    def identify(self, image: ImageInput, top_k: int | None = None, threshold: float | None = None) -> IdentifyResponse:
        """Every face with its enrolled identity (None below the threshold) and its candidates at or above it; a photo
        without a face answers with empty ``faces``, not an error."""
        return self.send(calls.identify(image, top_k, threshold))

    def verify(self, image_a: ImageInput, image_b: ImageInput, threshold: float | None = None) -> VerifyResponse:
        """Whether two photos show the same person (each photo's largest face); ``InvalidParameter`` naming the
        photo when one has no face."""
        return self.send(calls.verify(image_a, image_b, threshold))


class AsyncIdentityMethods:
    async def send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def _admin(self) -> dict[str, str]:
        raise NotImplementedError

    async def enrol(self, name: str, images: Images, same_person_check: bool = True) -> IdentityInfo:
        """Enrol a person from photos with exactly one face each (admin); never retried (it is not idempotent): after
        a 502 or a 504 whether it was saved is not known, so look (``identities``) before enrolling them again.
        Photos whose faces look like different people are refused (``InvalidParameter``, code ``different_people``)
        unless ``same_person_check`` is false."""
        return await self.send(calls.enrol(self._admin(), name, images, same_person_check))

    async def add_faces(self, identity_id: str, images: Images, same_person_check: bool = True) -> IdentityInfo:
        """More photos of an enrolled person (admin), refused as ``enrol``'s are when they look like someone else."""
        return await self.send(calls.add_faces(self._admin(), identity_id, images, same_person_check))

    async def identities(self, limit: int = 100, offset: int = 0) -> IdentityPage:
        return await self.send(calls.identities(self._admin(), limit, offset))

    async def identity(self, identity_id: str) -> IdentityInfo:
        return await self.send(calls.identity(self._admin(), identity_id))

    async def delete_identity(self, identity_id: str) -> None:
        """Delete a person (admin). Retried as a read is (deleting twice changes nothing more); a retry's 404 after a
        502 or a dropped connection, when the first attempt may have deleted them, is success: they are gone."""
        await self.send(calls.delete_identity(self._admin(), identity_id))

    async def identify(
        self, image: ImageInput, top_k: int | None = None, threshold: float | None = None
    ) -> IdentifyResponse:
        """Every face with its enrolled identity (None below the threshold) and its candidates at or above it; a photo
        without a face answers with empty ``faces``, not an error."""
        return await self.send(calls.identify(image, top_k, threshold))

    async def verify(self, image_a: ImageInput, image_b: ImageInput, threshold: float | None = None) -> VerifyResponse:
        """Whether two photos show the same person (each photo's largest face); ``InvalidParameter`` naming the
        photo when one has no face."""
        return await self.send(calls.verify(image_a, image_b, threshold))
