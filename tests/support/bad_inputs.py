"""Crafted image bytes: every supported format and mode, and every way an upload can be bad."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.support.images import encode, face_like_photo


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 64)
    idat_chunk = b"IDAT" + idat
    body += struct.pack(">I", len(idat)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    return b"\x89PNG\r\n\x1a\n" + body


def jpeg_with_orientation(orientation: int) -> bytes:
    """A 60×40 JPEG, left half red, whose EXIF says to rotate it."""
    image = Image.new("RGB", (60, 40), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 30, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif.tobytes())


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` (baseline) with its frame header saying ``width`` × ``height``: larger, its data ends early."""
    start = jpeg.index(b"\xff\xc0") + 5  # the marker, the segment's length (2) and the sample precision (1)
    return jpeg[:start] + struct.pack(">HH", height, width) + jpeg[start + 4 :]


def png_16bit_gray() -> bytes:
    array = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).astype(np.uint16)
    return encode(Image.fromarray(array), "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("P", (40, 40), color) for color in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def good_images() -> dict[str, bytes]:
    """One upload per supported format and unusual mode; every one must decode to RGB."""
    rgba = Image.new("RGBA", (48, 48), (255, 0, 0, 0))
    return {
        "jpeg": face_like_photo(64, 48),
        "png": face_like_photo(64, 48, "PNG"),
        "webp": face_like_photo(64, 48, "WEBP"),
        "bmp": face_like_photo(64, 48, "BMP"),
        "gif": animated_gif(),
        "grayscale": encode(Image.new("L", (40, 40), 128), "PNG"),
        "palette": encode(Image.new("RGB", (40, 40), (10, 200, 30)).convert("P"), "PNG"),
        "rgba": encode(rgba, "PNG"),
        "cmyk": encode(Image.new("CMYK", (40, 40), (0, 255, 255, 0)), "JPEG"),
        "16bit": png_16bit_gray(),
        "exif-rotated": jpeg_with_orientation(6),
    }


def bad_images() -> dict[str, tuple[bytes, set[int]]]:
    """Uploads that must each be refused, with the statuses that would be right."""
    jpeg = face_like_photo(200, 150)
    png = face_like_photo(200, 150, "PNG")
    webp = face_like_photo(200, 150, "WEBP")
    return {
        "empty": (b"", {400}),
        "text": (b"hello, this is not an image\n" * 10, {415}),
        "html": (b"<!doctype html><html><body><img src=x></body></html>", {415}),
        "json": (b'{"image": "base64..."}', {415}),
        "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", {415}),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', {415}),
        "truncated-jpeg": (jpeg[: len(jpeg) // 2], {400}),
        # closed with an end marker, or its header enlarged: Pillow paints the missing part flat, without a word
        "truncated-jpeg-closed": (jpeg[: len(jpeg) // 2] + b"\xff\xd9", {400}),
        "jpeg-header-enlarged": (jpeg_with_size(jpeg, 1200, 900), {400}),
        "truncated-png": (png[: len(png) // 2], {400}),
        "truncated-webp": (webp[: len(webp) // 2], {400}),
        "jpeg-header-only": (jpeg[:20], {400, 415}),
        "corrupt-jpeg-body": (jpeg[:200] + bytes(range(256)) * 8, {400}),
        "png-bad-crc": (png[:40] + b"\x00\x00\x00\x00" + png[44:], {400}),
        "bomb-png": (png_header_only(30000, 30000), {413}),
        "wide-strip": (encode(Image.new("RGB", (30000, 10)), "PNG"), {422}),
        "one-pixel": (encode(Image.new("RGB", (1, 1)), "PNG"), {422}),
        "tiff": (encode(Image.new("RGB", (32, 32)), "TIFF"), {415}),
        "ico": (encode(Image.new("RGB", (32, 32)), "ICO"), {415}),
        "random-bytes": (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), {415}),
        "gzip": (zlib.compress(jpeg), {415}),
    }
