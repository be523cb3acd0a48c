"""One replica's view of the enrolments: the database behind, an in-memory index in front, kept in sync.

Writes go to the database first and then into this replica's index at once (read-your-writes); every
``identity_poll_s`` the replica reads what others wrote and deleted since its cursor. When the database is
away, writes and listings answer 503 (``DatabaseUnavailable``) while /identify keeps answering from the last
index. The schema is upgraded on first contact, so a replica that starts while the database is down
catches up once it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.errors import DatabaseUnavailable, IncompatibleSchema
from app.identities import repository
from app.identities.database import database_errors, describe, first_line, migrate
from app.identities.index import FaceIndex
from app.identities.repository import IdentityRecord

log = logging.getLogger("deepcanvas.identities")
P = ParamSpec("P")
R = TypeVar("R")


# Each database call's deadline: a database that stops answering (a partition, a failover) gives a 503 after this,
# never a request that hangs; above PostgreSQL's statement timeout (15 s), which ends the usual slow query first.
CALL_TIMEOUT_S = 20.0
DATABASE_THREADS = 8


class IdentityGallery:
    def __init__(self, engine: Engine, call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.engine = engine
        self.call_timeout_s = call_timeout_s
        self.index: FaceIndex | None = None  # None until the first load from the database
        self._cursor = 0
        self._migrated = False
        self._apply = asyncio.Lock()  # index swaps, in order: a poll and a local write never interleave
        self._schema = asyncio.Lock()  # one schema upgrade at a time in this replica
        self._refusal = ""  # the last schema refusal logged: logged once, not at every poll
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
                self._log_refusal(refusal.detail)
                raise
            except SQLAlchemyError as error:
                self._log_refusal(f"the identity database's schema could not be upgraded: {first_line(error)}")
                raise IncompatibleSchema(
                    "the identity database's schema could not be upgraded to this release's (the service's log says "
                    "why)"
                ) from error
            self._migrated, self._refusal = True, ""
            log.info("identity database %s at the latest schema", describe(self.engine))
        finally:
            self._schema.release()

    def _log_refusal(self, reason: str) -> None:
        if reason != self._refusal:
            log.error("%s", reason)
            self._refusal = reason

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
        identity_id, faces = await self._call(repository.enrol, name, descriptors, embedder)
        await self._add_local(faces, embedder)
        return await self.get(identity_id, embedder)

    async def add_faces(self, identity_id: str, descriptors: list[np.ndarray], embedder: str) -> IdentityRecord:
        await self.ensure_index(embedder)
        faces = await self._call(repository.add_faces, identity_id, descriptors, embedder)
        await self._add_local(faces, embedder)
        return await self.get(identity_id, embedder)

    async def _add_local(self, faces: list[repository.StoredFace], embedder: str) -> None:
        async with self._apply:  # an index of another version (switched meanwhile) reloads them itself
            if self.index is not None and self.index.embedder == embedder and faces:
                self.index = self.index.with_changes(faces)

    async def delete(self, identity_id: str) -> None:
        await self._call(repository.delete, identity_id)
        async with self._apply:
            if self.index is not None:
                self.index = self.index.with_changes([], [identity_id])

    async def get(self, identity_id: str, embedder: str) -> IdentityRecord:
        return await self._call(repository.get, identity_id, embedder)

    async def page(self, limit: int, offset: int, embedder: str) -> tuple[list[IdentityRecord], int]:
        return await self._call(repository.page, limit, offset, embedder)

    async def keep_in_sync(self, embedder: Callable[[], str | None], interval: float) -> None:
        """Upgrade the schema, then poll forever; an outage is logged and the last index keeps serving."""
        while True:
            current = embedder()
            try:
                await self.ensure_schema()
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
