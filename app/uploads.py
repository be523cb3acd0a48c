"""Reading uploaded files into decoded images: small ones on the event loop, larger ones in a worker thread."""

from __future__ import annotations

import asyncio

from fastapi import UploadFile
from PIL import Image

from app.imaging import ImageLimits, load_rgb, open_checked, reduce_scale
from app.timings import timed_phase

# An upload decodes on the event loop when it is small both ways: what it decodes to (INLINE_PIXELS) and what
# the decoder reads (INLINE_SOURCE_PIXELS: a JPEG decoded at a reduced scale still reads every block; a
# 2560×1920 JPEG decoded to 320×240 takes 5 ms here). Within both, a decode takes well under a millisecond
# (640×480 to 320×240: 0.6 ms), about what the hop to a worker thread and back costs a request (0.3 ms or
# more); anything larger goes to a worker thread so that the event loop keeps answering.
INLINE_PIXELS = 320 * 320
INLINE_SOURCE_PIXELS = 640 * 640


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
    data = await upload.read()
    with timed_phase("decode"):
        image = open_checked(data, limits, field)
        source_pixels = image.width * image.height
        reduce_scale(image, reduce_to, long_side)
        if source_pixels <= INLINE_SOURCE_PIXELS and image.width * image.height <= INLINE_PIXELS:
            return load_rgb(image, field)
        return await asyncio.to_thread(load_rgb, image, field)
