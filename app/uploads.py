"""Reading uploaded files into decoded images: small ones on the event loop, larger ones in a worker thread."""

from __future__ import annotations

import asyncio

from fastapi import UploadFile
from PIL import Image

from app.imaging import ImageLimits, load_rgb, open_checked
from app.timings import timed_phase

# Decoding this many pixels takes a few tenths of a millisecond here, less than the hop to a worker thread
# and back costs a request (0.3 ms or more, measured with the models' threads idle); larger images, and
# every header that would decode to more, go to a worker thread so that the event loop keeps answering.
INLINE_PIXELS = 320 * 320


async def read_image(
    upload: UploadFile,
    limits: ImageLimits,
    field: str,
    reduce_to: int | None = None,
    long_side: int | None = None,
) -> Image.Image:
    """The upload's bytes (already bounded by the body limit) decoded to RGB; the header is read first.

    ``reduce_to`` and ``long_side``: what the route needs at most (``imaging.decode_image``). The header
    says how many pixels the decode will produce (after any reduced-scale JPEG decode): small images are
    decoded on the event loop, the rest in a worker thread.
    """
    data = await upload.read()
    with timed_phase("decode"):
        image = open_checked(data, limits, field, reduce_to, long_side)
        if image.width * image.height <= INLINE_PIXELS:
            return load_rgb(image, field)
        return await asyncio.to_thread(load_rgb, image, field)
