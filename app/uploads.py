"""Reading uploaded files into decoded images: small ones on the event loop, larger ones in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import UploadFile
from PIL import Image

from app.imaging import ImageLimits, load_rgb, open_checked, reduce_by, reduce_scale
from app.timings import timed_phase

R = TypeVar("R")

# An upload decodes on the event loop when it is small both ways: what it decodes to (INLINE_PIXELS) and what
# the decoder reads (INLINE_SOURCE_PIXELS: a JPEG decoded at a reduced scale still reads every block; a
# 2560×1920 JPEG decoded to 320×240 takes 5 ms here). Within both, a decode takes well under a millisecond
# (640×480 to 320×240: 0.6 ms), about what the hop to a worker thread and back costs a request (0.3 ms or
# more); anything larger goes to a worker thread so that the event loop keeps answering.
INLINE_PIXELS = 320 * 320
INLINE_SOURCE_PIXELS = 640 * 640


def upload_name(field: str, upload: UploadFile, unnamed: str | None = None) -> str:
    """How an error names an upload: its form field and file name, or ``unnamed`` (else the field) without one."""
    return f"{field} {upload.filename!r}" if upload.filename else unnamed or field


async def read_image(
    upload: UploadFile,
    limits: ImageLimits,
    field: str,
    reduce_to: int | None = None,
    long_side: int | None = None,
) -> Image.Image:
    """The upload's bytes (already bounded by the body limit) decoded to RGB; the header is read first.

    ``reduce_to`` and ``long_side``: what the route needs at most (``imaging.reduce_scale``). The header says
    how many pixels the decoder reads and how many it produces: small images are decoded on the event loop,
    the rest in a worker thread.
    """
    return (await _decode(upload, limits, field, lambda image: reduce_scale(image, reduce_to, long_side)))[0]


async def read_reduced(
    upload: UploadFile, limits: ImageLimits, field: str, reduction: Callable[[int, int], int]
) -> tuple[Image.Image, tuple[int, int] | None]:
    """The upload decoded (as ``read_image``); a JPEG decodes ``reduction(width, height)`` times smaller (1, 2,
    4 or 8: its DCT scales) when the route says it loses nothing by it, and then comes with its own (width,
    height), EXIF orientation applied (None: decoded whole)."""

    def reduce(image: Image.Image) -> tuple[int, int] | None:
        return reduce_by(image, reduction(image.width, image.height))

    return await _decode(upload, limits, field, reduce)


@dataclass
class ForFaces:
    """An upload decoded for the detector, and decoded whole on demand, once.

    ``image`` is the photo, or (``source``: the photo's own width and height) the photo decoded at a smaller DCT
    scale where the detector loses nothing (``read_reduced``). The model that reads each face (classifier,
    embedder) takes its pixels from ``image`` when the face is large enough there, else from ``whole()``
    (``services.face_source``): a 12 MP JPEG decodes whole in about 50 ms here, at an eighth in about 8.
    """

    image: Image.Image
    source: tuple[int, int] | None
    decode_whole: Callable[[], Awaitable[Image.Image]]
    _whole: Image.Image | None = field(default=None, repr=False)

    async def whole(self) -> Image.Image:
        if self.source is None:
            return self.image
        if self._whole is None:
            self._whole = await self.decode_whole()
        return self._whole


async def read_for_faces(
    upload: UploadFile, limits: ImageLimits, field: str, reduction: Callable[[int, int], int]
) -> ForFaces:
    """The upload decoded as ``read_reduced`` does, able to decode it whole later (``ForFaces``)."""
    decoded, source = await read_reduced(upload, limits, field, reduction)

    async def whole() -> Image.Image:
        await upload.seek(0)
        return await read_image(upload, limits, field)

    return ForFaces(decoded, source, whole)


async def _decode(
    upload: UploadFile, limits: ImageLimits, field: str, reduce: Callable[[Image.Image], R]
) -> tuple[Image.Image, R]:
    """The upload decoded after ``reduce`` set its opened image's scale, and what ``reduce`` returned."""
    data = await upload.read()
    with timed_phase("decode"):
        image = open_checked(data, limits, field)
        source_pixels = image.width * image.height
        reduced = reduce(image)
        if source_pixels <= INLINE_SOURCE_PIXELS and image.width * image.height <= INLINE_PIXELS:
            return load_rgb(image, field, data), reduced
        return await asyncio.to_thread(load_rgb, image, field, data), reduced
