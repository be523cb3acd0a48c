"""Reading uploaded files into decoded images, off the event loop."""

from __future__ import annotations

import asyncio

from fastapi import UploadFile
from PIL import Image

from app.imaging import ImageLimits, decode_image
from app.timings import timed_phase


async def read_image(upload: UploadFile, limits: ImageLimits, field: str, reduce_to: int | None = None) -> Image.Image:
    """The upload's bytes (already bounded by the body limit) decoded to RGB in a worker thread."""
    data = await upload.read()
    with timed_phase("decode"):
        return await asyncio.to_thread(decode_image, data, limits, field, reduce_to)
