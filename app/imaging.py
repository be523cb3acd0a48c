"""Decoding uploaded images with Pillow: format, size and pixel checks, EXIF orientation, mode conversion."""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
import simplejpeg
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from app.errors import InvalidImage, InvalidParameter, PayloadTooLarge, UnsupportedMediaType
from models.detector.tiling import JPEG_REDUCTIONS

SUPPORTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF"}
SUPPORTED_NAMES = "JPEG, PNG, WebP, BMP or GIF"
JPEG_FORMATS = frozenset(name for name, kind in SUPPORTED_FORMATS.items() if kind == "JPEG")  # JPEG and MPO


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    min_side: int


def decode_image(
    data: bytes,
    limits: ImageLimits,
    field: str = "image",
    reduce_to: int | None = None,
    long_side: int | None = None,
) -> Image.Image:
    """Decode ``data`` into an RGB image, or raise the domain error that says what is wrong.

    ``reduce_to`` and ``long_side``: see ``reduce_scale``.
    """
    return load_rgb(reduce_scale(open_checked(data, limits, field), reduce_to, long_side), field, data)


def open_checked(data: bytes, limits: ImageLimits, field: str = "image") -> Image.Image:
    """``data``'s image, its header read and checked but its pixels not yet decoded (``load_rgb`` does that)."""
    if not data:
        raise InvalidImage(f"{field}: the upload is empty")
    image = _open(data, field)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(
            f"{field}: image is {width}×{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise InvalidParameter(
            f"{field}: image is {width}×{height}; its smaller side must be at least {limits.min_side} pixels"
        )
    return image


def reduce_scale(image: Image.Image, reduce_to: int | None = None, long_side: int | None = None) -> Image.Image:
    """``image`` (from ``open_checked``), set to decode a JPEG at a reduced DCT scale when the caller allows it.

    ``reduce_to``: the caller needs no more than this many pixels on the smaller side (``long_side``: on the
    longer side), so a JPEG may be decoded at a reduced scale (several times faster than decoding it whole
    and resizing) as long as it keeps at least that many. The image's ``size`` becomes the decode's.
    """
    width, height = image.size
    bounds = ((reduce_to, min(width, height)), (long_side, max(width, height)))
    needed = [(need, side) for need, side in bounds if need is not None]
    if needed and image.format in JPEG_FORMATS:
        # a DCT scale decodes each side to its ceiling over the scale: the largest that keeps every bound
        kept = (f for f in JPEG_REDUCTIONS if all(math.ceil(side / f) >= need for need, side in needed))
        _draft(image, next(kept, 1))
    return image


def _draft(image: Image.Image, factor: int) -> None:
    """Set a JPEG to decode ``factor`` (a DCT scale) times smaller.

    Pillow picks the scale from the floor of each side over the request (and decodes to the ceiling): a
    rounded-up request on an odd side would fall short of the scale and decode whole.
    """
    if factor > 1:
        image.draft("RGB", (image.width // factor, image.height // factor))


ROTATING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations whose transpose swaps width and height


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) an opened image has once decoded: after ``load_rgb`` applies its EXIF orientation."""
    width, height = image.size
    return (
        (height, width) if image.getexif().get(ExifTags.Base.Orientation) in ROTATING_ORIENTATIONS else (width, height)
    )


def reduce_by(image: Image.Image, factor: int) -> tuple[int, int] | None:
    """Set an opened JPEG to decode ``factor`` (2, 4 or 8: a DCT scale) times smaller; its own (width, height)
    once upright when it will, else None (factor 1, another format, or EXIF too broken to read, which
    ``load_rgb`` then reports as a 400 on the whole decode). A JPEG's EXIF comes with its header: reading it
    decodes nothing (a PNG's would)."""
    if factor == 1 or image.format not in JPEG_FORMATS:
        return None
    try:
        size = oriented_size(image)
    except (OSError, ValueError, SyntaxError, struct.error):
        return None
    _draft(image, factor)
    return size


def load_rgb(image: Image.Image, field: str = "image", data: bytes | None = None) -> Image.Image:
    """An ``open_checked`` image decoded to RGB (truncation and corruption surface here as domain errors).
    ``data``: the bytes it was opened from, which a JPEG that may miss part of its data is checked against
    (``whole_jpeg``)."""
    return to_rgb(_load(image, field, data))


def _open(data: bytes, field: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's bomb warning must not leak into logs as noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise PayloadTooLarge(f"{field}: image has too many pixels ({error})") from error
    except UnidentifiedImageError as error:
        claimed = sniff_format(data)
        if claimed:
            raise InvalidImage(f"{field}: corrupt {claimed} image (Pillow cannot read it)") from error
        raise UnsupportedMediaType(f"{field}: not a {SUPPORTED_NAMES} image") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise InvalidImage(f"{field}: corrupt image header ({error})") from error
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedMediaType(f"{field}: {image.format} images are not supported; send {SUPPORTED_NAMES}")
    return image


def sniff_format(data: bytes) -> str | None:
    """The supported format whose signature ``data`` starts with, if any."""
    signatures = {
        b"\xff\xd8\xff": "JPEG",
        b"\x89PNG\r\n\x1a\n": "PNG",
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"BM": "BMP",
    }
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in signatures.items() if data.startswith(magic)), None)


def _load(image: Image.Image, field: str, data: bytes | None = None) -> Image.Image:
    """Force a full decode (first frame only) so truncation surfaces here, not inside a model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
            if data is not None and image.format in JPEG_FORMATS and _flat_last_row(image):
                whole_jpeg(data, field)  # before the transpose: the last row decoded is the one a fill reaches
            ImageOps.exif_transpose(image, in_place=True)  # the decoded image is ours: no copy of its pixels
            return image
    except Image.DecompressionBombError as error:
        raise PayloadTooLarge(f"{field}: image has too many pixels ({error})") from error
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as error:
        raise InvalidImage(f"{field}: truncated or corrupt {image.format} image ({error})") from error


def _flat_last_row(image: Image.Image) -> bool:
    """Whether the decoded image's last row is one colour: where libjpeg fills the blocks a JPEG's data ran out
    before (each block its predecessor's flat colour, to the end), and otherwise rare (a flat border or background;
    1.9 % of ../shared's 22,272 JPEGs, nearly all LFW's black-bordered crops)."""
    extrema = image.crop((0, image.height - 1, image.width, image.height)).getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)


def whole_jpeg(data: bytes, field: str) -> None:
    """``InvalidImage`` when the JPEG's entropy-coded data ends before its picture does: a file cut short and closed
    with an end marker, or a header enlarged past its data. Pillow decodes those without a word (libjpeg warns and
    paints the missing part flat), so a half-grey photo got "no face" and a 200. libjpeg-turbo, strict, through
    simplejpeg, at its smallest DCT scale (every coefficient is still read): 0.4-0.7 ms for a 500×375 photo. Only
    its "premature end" refuses; any other complaint is left to Pillow's decode, which read the image."""
    try:
        simplejpeg.decode_jpeg(data, strict=True, min_width=1, min_height=1)
    except ValueError as error:
        if "premature end" in str(error).lower():
            raise InvalidImage(
                f"{field}: truncated or corrupt JPEG image, part of its picture is missing ({error})"
            ) from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit and float scaled, alpha composited on white, CMYK converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _scale_to_8bit(image)
    elif mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


SCALE_ROWS = 256  # rows scaled at a time: a band's float32 copy, not the whole photo's


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """A one-channel 16-bit, 32-bit or float image as 8-bit "L", in bands of ``SCALE_ROWS`` rows.

    Scaling the whole array at once in float64 took several copies of eight bytes a pixel: an 84 KB PNG of
    6000x6000 16-bit pixels cost 890 MB to decode. Now the float32 work is one band at a time.
    """
    array = np.asarray(image)  # (H, W): uint16, int32 or float32
    if image.mode == "F":
        top = max(float(array.max(initial=0)), 1e-12)
    else:
        top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    factor = np.float32(255.0 / top)
    scaled = np.empty(array.shape, dtype=np.uint8)
    for start in range(0, array.shape[0], SCALE_ROWS):
        band = array[start : start + SCALE_ROWS].astype(np.float32)
        band *= factor
        band += np.float32(0.5)
        np.clip(band, 0, 255, out=band)
        scaled[start : start + SCALE_ROWS] = band  # truncating x + 0.5 rounds x
    return Image.fromarray(scaled)


def encode_image(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    """Encode as ``png`` or ``jpeg``; returns the bytes and the content type."""
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=92)
        return buffer.getvalue(), "image/jpeg"
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), "image/png"
