"""The id of the request being served, for its response header and for every log line written while serving it.

The telemetry middleware takes the client's ``X-Request-ID`` when it is sane, or makes one, and sets
``current_request_id`` for the request's task; ``RequestIdFilter`` (on the log handler) stamps each record with it.
An operator can then join a request's access line with its error, audit and warning lines. Lines written outside a
request (start-up, the store's polling, the identity sync) carry none. Lines a model's thread writes carry the id of
the request it works for, or of each request in its batch (``batch_request_id``; see ``app.manager.ModelSlot``).

A module of its own, with no imports from the app: the error handlers (``app.errors``) read it too, and the
telemetry module imports the model manager, which imports those.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar

# What a client may send as its id: bounded, and nothing that could split or forge a log line or a header.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(given: bytes) -> str:
    """The client's ``X-Request-ID`` value when it is sane (``SANE_REQUEST_ID``), otherwise a new random one."""
    if 0 < len(given) <= 128:
        text = given.decode("latin-1")
        if SANE_REQUEST_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


def batch_request_id(ids: Iterable[str | None]) -> str | None:
    """The id a model batch's log lines carry: its requests' ids, each once, in order, joined by commas ("a,b": no
    sane id holds a comma), so that a substring search for any one of them finds the batch's lines (an exact-match
    query on the field does not). None when none of its items came from a request: such lines look like any other
    line written outside a request. The RFB detector's lanes run in a copy of the caller's context: they carry it."""
    return ",".join(dict.fromkeys(i for i in ids if i is not None)) or None


class RequestIdFilter(logging.Filter):
    """Stamps a record with ``request_id`` while a request is served (a handler's filter: it sees every logger's
    records, where a logger's own filter would miss its children's). It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True
