"""Form text that keeps the bytes that were not UTF-8, for the routes that store what a client typed (names).

Starlette reads a multipart text field that is not valid UTF-8 as latin-1: a name sent with a stray 0xFF byte
was stored as the mojibake "aÿb", indistinguishable from a name typed that way. On the routes of
``Utf8FormRoute`` the undecodable bytes become lone surrogates instead (Python's ``surrogateescape``), which
valid UTF-8 never decodes to, so ``names.check_name`` can refuse the name as not UTF-8.
"""

from __future__ import annotations

from typing import ClassVar

from starlette.formparsers import MultiPartParser

from app.forms import FormRequest, FormRoute, WholeMultiPartParser


class Utf8MultiPartParser(WholeMultiPartParser):
    """``WholeMultiPartParser``, but a UTF-8 text field keeps its invalid bytes as lone surrogates."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None or self._charset != "utf-8":  # files, and fields of a declared other charset
            super().on_part_end()
            return
        self.items.append((part.field_name, bytes(part.data).decode("utf-8", "surrogateescape")))


class Utf8FormRequest(FormRequest):
    """A request whose multipart form is read by ``Utf8MultiPartParser``; other bodies as starlette reads them."""

    parser: ClassVar[type[MultiPartParser]] = Utf8MultiPartParser


class Utf8FormRoute(FormRoute):
    """A route whose handler and dependencies see a ``Utf8FormRequest``."""

    request_class: ClassVar[type[FormRequest]] = Utf8FormRequest
