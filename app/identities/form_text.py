"""Form text that keeps the bytes that were not UTF-8, for the routes that store what a client typed (names).

Starlette reads a multipart text field that is not valid UTF-8 as latin-1: a name sent with a stray 0xFF byte
was stored as the mojibake "aÿb", indistinguishable from a name typed that way. On the routes of
``Utf8FormRoute`` the undecodable bytes become lone surrogates instead (Python's ``surrogateescape``), which
valid UTF-8 never decodes to, so ``service.check_name`` can refuse the name as not UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import parse_options_header

DEFAULT_MAX_PART_SIZE = 1024 * 1024  # starlette's own defaults; FastAPI passes the route's limits


class Utf8MultiPartParser(MultiPartParser):
    """Starlette's parser, but a UTF-8 text field keeps its invalid bytes as lone surrogates."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None or self._charset != "utf-8":  # files, and fields of a declared other charset
            super().on_part_end()
            return
        self.items.append((part.field_name, bytes(part.data).decode("utf-8", "surrogateescape")))


class Utf8FormRequest(Request):
    """A request whose multipart form is read by ``Utf8MultiPartParser``; other bodies as starlette reads them."""

    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
    ) -> FormData:
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if self._form is None and content_type == b"multipart/form-data":
            try:
                async with aclosing(self.stream()) as stream:
                    parser = Utf8MultiPartParser(
                        self.headers, stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
                    )
                    self._form = await parser.parse()
            except MultiPartException as error:  # as starlette answers it: a malformed body is a 400
                raise HTTPException(status_code=400, detail=error.message) from error
        return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class Utf8FormRoute(APIRoute):
    """A route whose handler and dependencies see a ``Utf8FormRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def utf8_form_handler(request: Request) -> Response:
            return await handler(Utf8FormRequest(request.scope, request.receive))

        return utf8_form_handler
