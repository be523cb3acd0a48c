"""Reads and writes of the identity database; plain functions over an engine, run off the event loop.

Consistency across replicas rests on the revision counter (``tables``): writers are serialised by its row
lock, so once a reader sees the counter at ``c``, every write up to ``c`` is committed and visible. A reader
that asks for faces with ``cursor < revision <= c`` and deletions with ``revision > cursor`` misses nothing,
even under READ COMMITTED and across separate statements.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection, Engine, event, func, select, update
from sqlalchemy import delete as delete_rows
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.identities.database import SQLITE_BUSY_TIMEOUT_S
from app.identities.tables import FaceRow, IdentityRow, Revision


@dataclass(frozen=True)
class IdentityRecord:
    id: str
    name: str
    faces: int  # faces made by the serving embedder (the ones /identify compares)
    other_faces: int  # faces made by another embedder version: kept, never compared
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredFace:
    id: str
    identity_id: str
    name: str
    descriptor: np.ndarray  # (D,) float32, L2-normalised


@dataclass(frozen=True)
class Changes:
    revision: int  # the counter these changes bring a reader up to
    faces: list[StoredFace]  # new faces of the asked embedder, of identities not deleted
    deleted: list[str]  # identities deleted since the cursor


log = logging.getLogger("deepcanvas.identities")
# How long a deletion's checkpoint waits for readers to leave the SQLite write-ahead log before it leaves the
# erasure to the next poll (``erase_deleted``), rather than holding the request for the 30 s busy timeout.
ERASE_WAIT_MS = 1000


class CommitOutcomeUnknown(Exception):
    """The database raised during the write's COMMIT itself (a connection lost then): the commit may have been
    saved, so the change must not be answered as one that failed and may be sent again (``gallery._write``: a 504)."""


@contextmanager
def _write(engine: Engine, deadline: float | None) -> Iterator[Session]:
    """One write's transaction: committed when the block ends, rolled back when it raises.

    Everything before the COMMIT (the statements, the flush of pending rows) fails as itself: nothing was saved.
    An error raised by the COMMIT itself is ``CommitOutcomeUnknown``. ``deadline``: ``_bounded``.
    """
    with Session(engine) as session:
        session.begin()
        _bounded(session, deadline)
        yield session
        session.flush()  # what the commit would flush first: its errors are still before the COMMIT
        try:
            session.commit()
        except DBAPIError as error:
            raise CommitOutcomeUnknown(f"the COMMIT failed, so it may or may not be saved: {error}") from error


def _bounded(session: Session, deadline: float | None) -> None:
    """On PostgreSQL, every statement of the transaction ends by ``deadline`` (``time.monotonic()``) on the server:
    before each one, ``SET LOCAL statement_timeout`` to the time left then (at least 1 ms; a listener on the
    transaction's connection), so the statements together, not each, are bounded, and a write that would outlast the
    gallery's deadline is cancelled and rolled back instead of committing after the client was answered. The COMMIT
    itself is not bounded (PostgreSQL does not apply ``statement_timeout`` to it) and neither is the client's side
    (the pool's wait, the network). SQLite has no such bound (a lock wait there is another process on the file)."""
    if deadline is None or session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()  # the pool's wait and the connect come first

    def bound(conn: Connection, *_: object) -> None:
        left_ms = max(1, math.ceil((deadline - time.monotonic()) * 1000))  # 0 would mean no timeout at all
        cursor = conn.connection.cursor()  # the driver's own cursor: no event of its own, so no recursion
        try:
            cursor.execute(f"SET LOCAL statement_timeout = {left_ms}")
        finally:
            cursor.close()

    event.listen(connection, "before_cursor_execute", bound)  # this Connection object ends with the session


def _next_revision(session: Session) -> int:
    """Take the next revision; the row lock this takes serialises writers until commit."""
    session.execute(update(Revision).where(Revision.id == 1).values(value=Revision.value + 1))
    return int(session.execute(select(Revision.value).where(Revision.id == 1)).scalar_one())


def _new_id() -> str:
    return uuid.uuid4().hex


def _live(session: Session, identity_id: str) -> IdentityRow:
    row = session.get(IdentityRow, identity_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no identity {identity_id!r}")
    return row


def _face_rows(
    identity_id: str, descriptors: list[np.ndarray], embedder: str, now: datetime, rev: int
) -> list[FaceRow]:
    return [
        FaceRow(
            id=_new_id(),
            identity_id=identity_id,
            embedder=embedder,
            descriptor=np.asarray(d, dtype="<f4").tobytes(),
            created_at=now,
            revision=rev,
        )
        for d in descriptors
    ]


def _stored(rows: list[FaceRow], name: str) -> list[StoredFace]:
    return [StoredFace(r.id, r.identity_id, name, np.frombuffer(r.descriptor, dtype="<f4")) for r in rows]


def enrol(engine: Engine, name: str, descriptors: list[np.ndarray], embedder: str) -> tuple[str, list[StoredFace]]:
    """A new identity with these faces; returns its id and the stored faces."""
    record, faces = enrol_identity(engine, name, descriptors, embedder)
    return record.id, faces


def enrol_identity(
    engine: Engine, name: str, descriptors: list[np.ndarray], embedder: str, deadline: float | None = None
) -> tuple[IdentityRecord, list[StoredFace]]:
    """A new identity with these faces; returns its record (as GET reads it) and the stored faces.

    The record comes from the write itself, not from a read after it: a read that failed after the commit answered
    a 503 that invited the client to enrol the person again. ``deadline``: ``_bounded``; an error of the COMMIT itself:
    ``CommitOutcomeUnknown`` (``_write``).
    """
    now = datetime.now(UTC)
    with _write(engine, deadline) as session:
        rev = _next_revision(session)
        identity = IdentityRow(id=_new_id(), name=name, created_at=now, updated_at=now, revision=rev)
        session.add(identity)
        session.flush()
        faces = _face_rows(identity.id, descriptors, embedder, now, rev)
        session.add_all(faces)
        return IdentityRecord(identity.id, name, len(faces), 0, now, now), _stored(faces, name)


def add_faces(
    engine: Engine, identity_id: str, descriptors: list[np.ndarray], embedder: str, deadline: float | None = None
) -> tuple[IdentityRecord, list[StoredFace]]:
    """Faces added to a live identity; returns its record after the change (read in the same transaction, like
    ``enrol_identity``'s) and the stored faces."""
    now = datetime.now(UTC)
    with _write(engine, deadline) as session:
        rev = _next_revision(session)
        identity = _live(session, identity_id)  # after the lock: a concurrent delete is either done or waits
        identity.updated_at, identity.revision = now, rev
        faces = _face_rows(identity_id, descriptors, embedder, now, rev)
        session.add_all(faces)
        session.flush()
        [record] = _records(session, [identity], embedder)
        return record, _stored(faces, identity.name)


def delete(engine: Engine, identity_id: str, deadline: float | None = None) -> bool:
    """Erase the identity's faces and name; a tombstone row tells other replicas to drop it.

    On SQLite the erased bytes must leave the files too: freed space is overwritten (``secure_delete``, set on every
    connection), and the write-ahead log, which still held the name and descriptors of every deleted person in its
    older frames for as long as the service ran (a checkpoint copies frames back but does not erase them), is
    checkpointed and truncated (``erase_deleted``). Returns whether that erasure is done: False when a reader kept
    the log (the deletion itself is committed either way; call ``erase_deleted`` again later). PostgreSQL keeps dead
    row versions until (auto)vacuum: docs/identity.md. ``deadline``: ``_bounded``.
    """
    now = datetime.now(UTC)
    with _write(engine, deadline) as session:
        rev = _next_revision(session)
        identity = _live(session, identity_id)
        session.execute(delete_rows(FaceRow).where(FaceRow.identity_id == identity_id))
        identity.name, identity.deleted_at, identity.updated_at, identity.revision = "", now, now, rev
    try:
        return erase_deleted(engine)
    except OperationalError as error:  # committed: a failed erasure must not answer as a failed deletion
        log.warning("the identity database's write-ahead log could not be checkpointed: %s", error)
        return False


def erase_deleted(engine: Engine) -> bool:
    """SQLite: checkpoint the write-ahead log and truncate it, erasing the older frames that still hold what
    deletions removed. Returns False when it could not (``PRAGMA wal_checkpoint``'s ``busy``: a reader still in the
    log after ``ERASE_WAIT_MS``, or another checkpoint); True when done, and always on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {ERASE_WAIT_MS}")
        try:
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
    return not busy


def _counts(session: Session, ids: list[str], embedder: str) -> dict[tuple[str, bool], int]:
    same = FaceRow.embedder == embedder
    query = (
        select(FaceRow.identity_id, same, func.count())
        .where(FaceRow.identity_id.in_(ids))
        .group_by(FaceRow.identity_id, same)
    )
    return {(identity_id, bool(is_same)): int(n) for identity_id, is_same, n in session.execute(query)}


def _records(session: Session, rows: list[IdentityRow], embedder: str) -> list[IdentityRecord]:
    counts = _counts(session, [r.id for r in rows], embedder) if rows else {}
    return [
        IdentityRecord(
            r.id, r.name, counts.get((r.id, True), 0), counts.get((r.id, False), 0), r.created_at, r.updated_at
        )
        for r in rows
    ]


def get(engine: Engine, identity_id: str, embedder: str) -> IdentityRecord:
    with Session(engine) as session:
        [record] = _records(session, [_live(session, identity_id)], embedder)
        return record


def descriptors(engine: Engine, identity_id: str, embedder: str) -> list[np.ndarray]:
    """A live identity's descriptors of ``embedder`` (what faces added to it are compared with); 404 otherwise."""
    with Session(engine) as session:
        _live(session, identity_id)
        query = select(FaceRow.descriptor).where(FaceRow.identity_id == identity_id, FaceRow.embedder == embedder)
        return [np.frombuffer(d, dtype="<f4") for d in session.execute(query).scalars()]


def page(engine: Engine, limit: int, offset: int, embedder: str) -> tuple[list[IdentityRecord], int]:
    """Live identities by creation time (then id), and how many there are in all."""
    live = IdentityRow.deleted_at.is_(None)
    with Session(engine) as session:
        total = int(session.execute(select(func.count()).select_from(IdentityRow).where(live)).scalar_one())
        query = select(IdentityRow).where(live).order_by(IdentityRow.created_at, IdentityRow.id)
        rows = list(session.execute(query.limit(limit).offset(offset)).scalars())
        return _records(session, rows, embedder), total


def changes_since(engine: Engine, cursor: int, embedder: str) -> Changes:
    """What a replica at ``cursor`` lacks: faces of ``embedder`` up to the counter, and deletions."""
    with Session(engine) as session:
        upto = int(session.execute(select(Revision.value).where(Revision.id == 1)).scalar_one())
        faces = session.execute(
            select(FaceRow.id, FaceRow.identity_id, IdentityRow.name, FaceRow.descriptor)
            .join(IdentityRow, IdentityRow.id == FaceRow.identity_id)
            .where(FaceRow.embedder == embedder, FaceRow.revision > cursor, FaceRow.revision <= upto)
            .where(IdentityRow.deleted_at.is_(None))
        )
        stored = [StoredFace(f, i, n, np.frombuffer(d, dtype="<f4")) for f, i, n, d in faces]
        deleted = session.execute(
            select(IdentityRow.id).where(IdentityRow.deleted_at.is_not(None), IdentityRow.revision > cursor)
        )
        return Changes(upto, stored, list(deleted.scalars()))
