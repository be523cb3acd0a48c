"""One replica's view of the enrolments: the database behind, an in-memory index in front, kept in sync.

Writes go to the database first and then into this replica's index at once (read-your-writes); every
``identity_poll_s`` the replica reads what others wrote and deleted since its cursor. When the database is
away, writes and listings answer 503 (``DatabaseUnavailable``) while /identify keeps answering from the last
index. The schema is upgraded on first contact, so a replica that starts while the database is down
catches up once it is back. A write that outlasts its deadline, or whose COMMIT fails, may still be saved after
the answer, so it answers 504 (``WriteOutcomeUnknown``) instead, never a 503 inviting a retry: ``_write``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.errors import DatabaseUnavailable, IncompatibleSchema, WriteOutcomeUnknown
from app.identities import repository
from app.identities.database import cancelled_by_the_server, database_errors, describe, first_line, migrate
from app.identities.index import FaceIndex
from app.identities.repository import IdentityRecord
from app.log_once import ReasonsLogged

log = logging.getLogger("deepcanvas.identities")
P = ParamSpec("P")
R = TypeVar("R")


# Each database call's deadline: a database that stops answering (a partition, a failover) gives a 503 after this
# (a write that may still be saved: a 504, ``_write``), never a request that hangs; above PostgreSQL's statement
# timeout (15 s), which ends the usual slow query first.
CALL_TIMEOUT_S = 20.0
DATABASE_THREADS = 8
# A write's server-side bound (PostgreSQL) ends this long before its deadline, so that the database's cancellation
# (and rollback) reaches the gallery before the deadline does: a quarter of the deadline, at most 5 s (15 s of 20).
WRITE_MARGIN_FRACTION = 0.25
WRITE_MARGIN_MAX_S = 5.0


class IdentityGallery:
    def __init__(
        self, engine: Engine, call_timeout_s: float = CALL_TIMEOUT_S, write_margin_s: float | None = None
    ) -> None:
        self.engine = engine
        self.call_timeout_s = call_timeout_s
        if write_margin_s is None:
            write_margin_s = min(WRITE_MARGIN_MAX_S, call_timeout_s * WRITE_MARGIN_FRACTION)
        self.write_budget_s = max(0.0, call_timeout_s - write_margin_s)  # a write's time on the server (PostgreSQL)
        self.index: FaceIndex | None = None  # None until the first load from the database
        self._cursor = 0
        self._migrated = False
        self._apply = asyncio.Lock()  # index swaps, in order: a poll and a local write never interleave
        self._schema = asyncio.Lock()  # one schema upgrade at a time in this replica
        self._refusals = ReasonsLogged(log)  # a schema refusal is logged once per reason, not at every poll
        self._erasures = ReasonsLogged(log)  # a failing erasure (``erase_deleted``) is logged once per reason
        self.unerased = False  # a deletion's SQLite write-ahead log not truncated yet (a reader held it)
        # Database calls run on threads of their own: calls that hang on a silent database must not take the
        # default executor's few threads, which model loads, store reads and image decoding share.
        self._threads = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="identity-db")

    async def ensure_schema(self) -> None:
        """Upgrade the database to the latest schema, once per process (at start, or when it is back).

        While this replica upgrades, other calls wait for it here (up to ``call_timeout_s``, then 503), not each for
        the migration lock with a thread and a pooled connection of its own. A schema this release cannot use, or an
        upgrade that fails, is logged once with its reason and refused (503) until it changes, rather than a stack
        trace at every poll.
        """
        if self._migrated:
            return
        try:
            await asyncio.wait_for(self._schema.acquire(), self.call_timeout_s)
        except TimeoutError:
            raise DatabaseUnavailable(
                "the identity database's schema is being checked or upgraded; retry shortly"
            ) from None
        try:
            if self._migrated:  # done while this call waited
                return
            try:
                with database_errors(self.engine):
                    await asyncio.get_running_loop().run_in_executor(self._threads, migrate, self.engine)
            except IncompatibleSchema as refusal:
                self._refusals.log("schema", refusal.detail, logging.ERROR, "%s", refusal.detail)
                raise
            except SQLAlchemyError as error:
                reason = f"the identity database's schema could not be upgraded: {first_line(error)}"
                self._refusals.log("schema", reason, logging.ERROR, "%s", reason)
                raise IncompatibleSchema(
                    "the identity database's schema could not be upgraded to this release's (the service's log says "
                    "why)"
                ) from error
            self._migrated = True
            self._refusals.forget("schema")
            log.info("identity database %s at the latest schema", describe(self.engine))
        finally:
            self._schema.release()

    async def _call(self, function: Callable[Concatenate[Engine, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``function(engine, ...)`` on the database's threads, within ``call_timeout_s`` (else a 503)."""
        await self.ensure_schema()
        with database_errors(self.engine):
            work = asyncio.get_running_loop().run_in_executor(
                self._threads, partial(function, self.engine, *args, **kwargs)
            )
            try:
                return await asyncio.wait_for(work, self.call_timeout_s)
            except TimeoutError:
                log.warning(
                    "identity database %s did not answer within %g s", describe(self.engine), self.call_timeout_s
                )
                raise DatabaseUnavailable(
                    f"the identity database did not answer within {self.call_timeout_s:g} s; retry shortly"
                ) from None

    async def _write(self, change: str, check: str, function: Callable[..., R], *args: object, **kwargs: object) -> R:
        """``function(engine, ..., deadline=...)``: a change, within ``call_timeout_s`` like ``_call``, but a deadline
        that passes is not a 503 with Retry-After: the thread cannot be stopped, and a database that answers late
        commits the change after the client was told to send it again (an enrolment saved twice). So:

        - on PostgreSQL every statement of the change ends on the server by ``write_budget_s`` after it was
          submitted (``repository._bounded``: each gets the time left, so all of them together end by then): a change
          that waits (a lock, a slow server) is cancelled and rolled back before the deadline, a 503 with
          Retry-After whose detail says nothing was saved;
        - a change that never left the queue for a thread is dropped: the same 503;
        - an error before the COMMIT (an outage: ``database_errors``) is a 503 too: the transaction was not
          committed; but one raised by the COMMIT itself (``repository.CommitOutcomeUnknown``: a connection lost
          then) may come after the database saved it: ``WriteOutcomeUnknown``, as below;
        - otherwise (a silent network, a SQLite lock, a COMMIT that does not answer: the COMMIT is not bounded),
          ``WriteOutcomeUnknown`` (504, no Retry-After) whose detail says the ``change`` may still be saved and to
          ``check`` before sending it again; how it ended is logged when it does.
        """
        await self.ensure_schema()
        deadline = time.monotonic() + self.write_budget_s
        with database_errors(self.engine):
            job = self._threads.submit(partial(function, self.engine, *args, deadline=deadline, **kwargs))
            try:
                return await asyncio.wait_for(asyncio.wrap_future(job), self.call_timeout_s)
            except TimeoutError:
                where = describe(self.engine)
                if job.cancel():  # still queued behind other calls: never started
                    log.warning("identity database %s: %s waited past its deadline and was dropped", where, _a(change))
                    raise DatabaseUnavailable(
                        f"the identity database did not answer within {self.call_timeout_s:g} s; the {change} was "
                        "not started, so nothing was saved; retry shortly"
                    ) from None
                log.warning(
                    "identity database %s did not answer %s within %g s; it may still be saved",
                    where,
                    _a(change),
                    self.call_timeout_s,
                )
                job.add_done_callback(partial(_log_late_outcome, where, change))
                raise WriteOutcomeUnknown(
                    f"the identity database did not answer within {self.call_timeout_s:g} s, so whether the {change} "
                    f"was saved is unknown (it may still be): {check}"
                ) from None
            except repository.CommitOutcomeUnknown as error:
                log.warning(
                    "identity database %s: the COMMIT of %s failed, so it may be saved: %s",
                    describe(self.engine),
                    _a(change),
                    first_line(error.__cause__ or error),
                )
                raise WriteOutcomeUnknown(
                    f"the identity database's connection failed while it committed the {change}, so whether the "
                    f"{change} was saved is unknown (it may be): {check}"
                ) from error
            except DBAPIError as error:
                if not cancelled_by_the_server(error):
                    raise
                log.warning("identity database %s: %s was cancelled: %s", describe(self.engine), _a(change), error.orig)
                raise DatabaseUnavailable(
                    f"the identity database did not finish the {change} within {self.write_budget_s:g} s, so it was "
                    "cancelled and nothing was saved; retry shortly"
                ) from error

    def loaded_index(self) -> FaceIndex:
        """The index to search; before the first load from the database there is none to answer with."""
        if self.index is None:
            raise DatabaseUnavailable("the identity index has not been loaded from the database yet; retry shortly")
        return self.index

    async def refresh(self, embedder: str) -> None:
        """Read what changed since the cursor (everything, for a new embedder version) into the index."""
        async with self._apply:
            current = self.index if self.index is not None and self.index.embedder == embedder else None
            base, cursor = (current, self._cursor) if current is not None else (FaceIndex(embedder), 0)
            changes = await self._call(repository.changes_since, cursor, embedder)
            self.index, self._cursor = base.with_changes(changes.faces, changes.deleted), changes.revision

    async def ensure_index(self, embedder: str) -> None:
        """Load the index of ``embedder``'s version unless it is the one in memory: on first use, a request need
        not wait for the first poll (readiness does not either), and a new embedder version never compares with the
        last one's descriptors. With the database away and nothing loaded yet, ``DatabaseUnavailable``."""
        if self.index is None or self.index.embedder != embedder:
            await self.refresh(embedder)

    async def enrol(self, name: str, descriptors: list[np.ndarray], embedder: str) -> IdentityRecord:
        await self.ensure_index(embedder)
        check = "GET /identities lists it if it was; check before enrolling the person again"
        record, faces = await self._write("enrolment", check, repository.enrol_identity, name, descriptors, embedder)
        await self._add_local(faces, embedder)
        return record

    async def add_faces(self, identity_id: str, descriptors: list[np.ndarray], embedder: str) -> IdentityRecord:
        await self.ensure_index(embedder)
        check = f"GET /identities/{identity_id} counts its faces; check before sending the photos again"
        function = repository.add_faces
        record, faces = await self._write("addition of faces", check, function, identity_id, descriptors, embedder)
        await self._add_local(faces, embedder)
        return record

    async def _add_local(self, faces: list[repository.StoredFace], embedder: str) -> None:
        async with self._apply:  # an index of another version (switched meanwhile) reloads them itself
            if self.index is not None and self.index.embedder == embedder and faces:
                self.index = self.index.with_changes(faces)

    async def delete(self, identity_id: str) -> None:
        check = f"GET /identities/{identity_id} answers 404 once it is done; sending it again is harmless"
        erased = await self._write("deletion", check, repository.delete, identity_id)
        async with self._apply:
            if self.index is not None:
                self.index = self.index.with_changes([], [identity_id])
        if not erased and not self.unerased:
            log.warning(
                "identity database %s: a reader kept the SQLite write-ahead log, which still holds what a deletion "
                "removed; the erasure is tried again at each poll",
                describe(self.engine),
            )
        self.unerased = self.unerased or not erased

    async def erase_deleted(self) -> None:
        """Finish an erasure a reader held off (``repository.erase_deleted``): at each poll until it is done."""
        if self.unerased and await self._call(repository.erase_deleted):
            self.unerased = False
            log.info("identity database %s: the write-ahead log is truncated, deletions erased", describe(self.engine))

    async def get(self, identity_id: str, embedder: str) -> IdentityRecord:
        return await self._call(repository.get, identity_id, embedder)

    async def descriptors(self, identity_id: str, embedder: str) -> list[np.ndarray]:
        return await self._call(repository.descriptors, identity_id, embedder)

    async def page(self, limit: int, offset: int, embedder: str) -> tuple[list[IdentityRecord], int]:
        return await self._call(repository.page, limit, offset, embedder)

    async def keep_in_sync(self, embedder: Callable[[], str | None], interval: float) -> None:
        """Upgrade the schema, then poll forever; an outage is logged and the last index keeps serving."""
        while True:
            current = embedder()
            try:
                await self.ensure_schema()
                try:  # its own try: an erasure that fails must not skip this poll's refresh of the index
                    await self.erase_deleted()
                except DatabaseUnavailable:
                    pass  # logged by database_errors; tried again at the next poll
                except Exception as error:  # logged once per reason, not at every poll; tried again at the next
                    reason = first_line(error)
                    self._erasures.log("erase", reason, logging.ERROR, "identity erasure failed: %s", reason)
                else:
                    self._erasures.forget("erase")
                if current is not None:
                    await self.refresh(current)
            except DatabaseUnavailable:
                pass  # logged by database_errors; reads keep the last index
            except Exception:  # a bug must not end the replica's sync for good: log it, try again next time
                log.exception("identity sync failed")
            # Until the first load (models still loading, database away), look again soon.
            await asyncio.sleep(interval if self.index is not None else min(interval, 0.5))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


def _log_late_outcome(where: str, change: str, job: Future[object]) -> None:
    """How a change that answered 504 (``WriteOutcomeUnknown``) ended, once it did: for the operator who is asked."""
    error = job.exception()
    if error is None:
        log.warning("identity database %s: %s that answered 504 was saved after all", where, _a(change))
    else:
        log.warning(
            "identity database %s: %s that answered 504 was not saved: %s", where, _a(change), first_line(error)
        )


def _a(change: str) -> str:
    """The change with its article, for the log: "an enrolment", "an addition of faces", "a deletion"."""
    return f"{'an' if change[:1] in 'aeiou' else 'a'} {change}"
