"""Runtime parameters and active model versions: validated documents in the model store.

Each document carries a version number used for optimistic concurrency (ETag / If-Match) and is
polled by every replica, so all tasks of a service converge on the same parameters and models.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import Field, ValidationError, model_validator

from app.errors import (
    ActivationConflict,
    ActivationFailed,
    ActivationNotRecorded,
    DeepCanvasError,
    InvalidParameter,
)
from app.log_once import ReasonsLogged, reason_of
from app.manager import LOAD_ERRORS
from app.schemas import ParamsDocument, RuntimeParams
from app.settings import Settings
from app.store.objects import ObjectMissing, ObjectStore, WriteConflict, update_object
from deepcanvas.schemas import Document
from models.artifact import ArtifactError

log = logging.getLogger("deepcanvas.runtime")
audit = logging.getLogger("deepcanvas.audit")

PARAMS_KEY = "_runtime/params.json"
ACTIVE_KEY = "_runtime/active.json"


class PreconditionFailed(InvalidParameter):
    """If-Match does not name the current version."""

    status = 409
    code = "precondition_failed"


class PreconditionRequired(InvalidParameter):
    status = 428
    code = "precondition_required"


class MalformedIfMatch(DeepCanvasError):
    """If-Match is neither ``*`` nor a list of quoted entity tags."""

    status = 400
    code = "malformed_if_match"


def default_params(settings: Settings) -> RuntimeParams:
    """The parameters a replica starts with before the store has a document: the settings' values."""
    return RuntimeParams(
        stylize_max_side=settings.stylize_max_side,
        max_upload_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        min_side=settings.min_side,
        queue_size=settings.queue_size,
    )


class ActiveDocument(Document):
    active: dict[str, str] = Field(default_factory=dict, description="role -> version")

    @model_validator(mode="after")
    def _safe(self) -> ActiveDocument:
        from models.artifact import check_safe_name

        for version in self.active.values():
            check_safe_name(version, "version")
        return self


def read_document(objects: ObjectStore, key: str, kind: type[Any]) -> Any | None:
    """The stored document, or None when there is none yet; a malformed one is an ArtifactError."""
    return read_tagged_document(objects, key, kind)[0]


def read_tagged_document(objects: ObjectStore, key: str, kind: type[Any]) -> tuple[Any | None, str | None]:
    """The stored document and its store tag, for a conditional write; (None, None) when there is none yet."""
    try:
        raw, tag = objects.read_tagged(key)
    except ObjectMissing:
        return None, None
    return parse_document(key, raw, kind), tag


def parse_document(key: str, raw: bytes, kind: type[Any]) -> Any:
    """A stored document's bytes as ``kind``; a malformed one is an ArtifactError."""
    try:
        return kind.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as error:
        raise ArtifactError(f"{key} is not a valid document: {error}") from error


def write_document(objects: ObjectStore, key: str, document: Document, tag: str | None) -> None:
    """Write ``document`` only over the version read with ``tag`` (``WriteConflict`` if another writer won)."""
    objects.write_if(key, document.model_dump_json(indent=2).encode(), tag)


# One element of If-Match's list (RFC 9110 §8.8.3, §13.1.1): a quoted tag, then a comma or the end.
# A weak tag (W/"3") is taken as its strong one: a proxy compressing the answer (nginx's gzip) weakens ETags.
ENTITY_TAG = re.compile(r'[ \t]*(?:W/)?"([^"\x00-\x20\x7f]*)"[ \t]*(?:,|$)')
VERSION_TAG = re.compile(r"[0-9]{1,18}")


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header names; None for ``*``, which matches whatever version exists.

    A well-formed tag that is no version number names no version (its update gets 409); a header that is not an
    entity-tag list is a client error (400), not a conflict.
    """
    if header is None:
        raise PreconditionRequired("If-Match is required: send the ETag from GET /admin/params")
    if header.strip() == "*":
        return None
    header, position = header.strip(), 0
    tags: list[str] = []
    while position < len(header) or not tags:
        found = ENTITY_TAG.match(header, position)
        if found is None:
            raise MalformedIfMatch(
                f"If-Match {header!r} is not an ETag: send the ETag of GET /admin/params as it came, quotes "
                'included (e.g. "3"), or * for whatever version is current'
            )
        tags.append(found.group(1))
        position = found.end()
    return frozenset(int(tag) for tag in tags if VERSION_TAG.fullmatch(tag))


class ParamsService:
    """The parameters this replica serves with, kept in step with the store."""

    def __init__(self, settings: Settings, objects: ObjectStore) -> None:
        self.settings = settings
        self.objects = objects
        self.document = ParamsDocument(params=default_params(settings))
        self._lock = asyncio.Lock()

    @property
    def params(self) -> RuntimeParams:
        return self.document.params

    async def refresh(self) -> bool:
        """Apply the stored document when it is newer; True when something changed."""
        stored = await asyncio.to_thread(read_document, self.objects, PARAMS_KEY, ParamsDocument)
        return self._adopt(stored)

    def _adopt(self, stored: ParamsDocument | None) -> bool:
        """Apply a stored document that is newer than this replica's; True when it was."""
        if stored is None or stored.version <= self.document.version:
            return False
        self._apply(stored, stored.updated_by or "store")
        return True

    def _apply(self, document: ParamsDocument, who: str) -> None:
        old, new = self.document.params.model_dump(), document.params.model_dump()
        changes = {k: [old[k], new[k]] for k in new if old[k] != new[k]}
        self.document = document
        audit.info(
            "params version %d applied",
            document.version,
            extra={"fields": {"event": "params.applied", "who": who, "version": document.version, "changes": changes}},
        )

    async def update(self, patch: dict[str, Any], if_match: int | frozenset[int] | None, who: str) -> ParamsDocument:
        """Merge ``patch`` into the current document if ``if_match`` names its version (None: any version).

        The store write is conditional on the document read here: when another replica writes in between,
        this update fails with 409 rather than silently overwriting that one. A patch that changes nothing
        (``{}``, or the values in force) writes nothing and answers the current document.
        """
        versions = frozenset({if_match}) if isinstance(if_match, int) else if_match
        async with self._lock:
            stored, tag = await asyncio.to_thread(read_tagged_document, self.objects, PARAMS_KEY, ParamsDocument)
            self._adopt(stored)
            if versions is not None and self.document.version not in versions:
                named = ", ".join(str(v) for v in sorted(versions)) or "no version"
                raise PreconditionFailed(
                    f"params changed: If-Match names {named}, the current version is {self.document.version}"
                )
            params = self._validate(patch)
            if params == self.params:
                return self.document
            document = ParamsDocument(
                version=self.document.version + 1, params=params, updated_at=datetime.now(UTC), updated_by=who
            )
            try:
                await asyncio.to_thread(write_document, self.objects, PARAMS_KEY, document, tag)
            except WriteConflict as error:
                raise PreconditionFailed(
                    f"params changed while version {document.version} was being written (another replica); "
                    "GET /admin/params and retry"
                ) from error
            self._apply(document, who)
            return document

    def _validate(self, patch: dict[str, Any]) -> RuntimeParams:
        """The parameters in force with ``patch`` applied; InvalidParameter naming the first bad field.

        Strict: JSON ``true`` is no number and ``"5"`` no integer (lax mode made them 1 and 5, which every
        replica then served with); an integer is still a valid float.
        """
        unknown = set(patch) - set(RuntimeParams.model_fields)
        if unknown:
            raise InvalidParameter(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        try:
            params = RuntimeParams.model_validate(self.params.model_dump() | patch, strict=True)
        except ValidationError as error:
            raise InvalidParameter(_describe(error)) from error
        if params.stylize_max_side > self.settings.stylize_max_side_limit:
            raise InvalidParameter(f"stylize_max_side: must be at most {self.settings.stylize_max_side_limit}")
        return params


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())


WRITE_ATTEMPTS = 5


class RollbackUnavailable(InvalidParameter):
    status = 409
    code = "rollback_unavailable"


class ActiveModels:
    """Which version each role serves, persisted so that every replica converges on it."""

    def __init__(self, manager: Any, objects: ObjectStore) -> None:
        self.manager = manager
        self.objects = objects
        self.document = ActiveDocument()
        self._lock = asyncio.Lock()
        self._not_converged = ReasonsLogged(log)  # each role's failures to converge, logged once per reason
        self._recorded = 0  # the newest document version this replica has written (its own activations)

    async def activate(self, role: str, ref: str, who: str) -> str:
        """Load, verify and warm ``ref``, record it for the other replicas, then swap it in.

        The record comes before the swap: when the store cannot take it (away, or changing under every try),
        the new version does not serve here either, since the other replicas, which follow the record, would
        keep the old one for good. The answer then says the activation did not happen, and why.
        """
        old = self.manager.status[role].version

        async def record(version: str) -> None:
            async with self._lock:
                written = await self._record(role, version, who, old)
                self._recorded = max(self._recorded, written.version)
                # The written document names the other roles' versions too: adopted while one of them does not
                # serve its version here (not published yet, when another replica activated it), no poll would
                # try that role again (``refresh`` skips a document no newer than this one), for good.
                if self._serves(written, besides={role: version}):
                    self.document = written

        try:
            version: str = await self.manager.activate(role, ref, commit=record)
        except LOAD_ERRORS as error:
            raise ActivationFailed(f"could not activate {role} {ref!r}; {old} keeps serving: {error}") from error
        audit.info(
            "model %s activated: %s -> %s",
            role,
            old,
            version,
            extra={"fields": {"event": "model.activated", "who": who, "role": role, "old": old, "new": version}},
        )
        return version

    def _serves(self, document: ActiveDocument, besides: dict[str, str]) -> bool:
        """Whether every role ``document`` names serves its version here (``besides``: about to)."""
        for role, version in document.active.items():
            status = self.manager.status.get(role)
            if status is not None and besides.get(role, status.version) != version:
                return False
        return True

    async def _record(self, role: str, version: str, who: str, old: str | None) -> ActiveDocument:
        """Merge ``role: version`` into the stored document; another replica's activation in between is kept.

        ``ActivationNotRecorded`` (503) when the store cannot be read or written, ``ActivationConflict`` (409)
        when other writers won every conditional write; either is audit-logged, as the activation not done.
        """

        def merged(raw: bytes | None) -> bytes:
            current = parse_document(ACTIVE_KEY, raw, ActiveDocument) if raw is not None else self.document
            document = ActiveDocument(
                version=current.version + 1,
                active=current.active | {role: version},
                updated_at=datetime.now(UTC),
                updated_by=who,
            )
            return document.model_dump_json(indent=2).encode()

        try:
            written = await asyncio.to_thread(update_object, self.objects, ACTIVE_KEY, merged, WRITE_ATTEMPTS)
        except WriteConflict as error:
            reason = f"{ACTIVE_KEY} kept changing ({WRITE_ATTEMPTS} writes lost to other replicas); retry"
            self._not_recorded(role, version, who, old, reason)
            raise ActivationConflict(f"{role} {version} was not activated: {reason}; {old} keeps serving") from error
        except (ArtifactError, OSError) as error:
            reason = f"the model store: {error}"
            self._not_recorded(role, version, who, old, reason)
            raise ActivationNotRecorded(
                f"{role} {version} was not activated: {reason}; {old} keeps serving (its record for the other "
                "replicas could not be written)"
            ) from error
        document: ActiveDocument = parse_document(ACTIVE_KEY, written, ActiveDocument)
        return document

    @staticmethod
    def _not_recorded(role: str, version: str, who: str, old: str | None, reason: str) -> None:
        audit.warning(
            "model %s not activated: %s could not be recorded (%s); %s keeps serving",
            role,
            version,
            reason,
            old,
            extra={
                "fields": {
                    "event": "model.activation_not_recorded",
                    "who": who,
                    "role": role,
                    "old": old,
                    "new": version,
                    "reason": reason,
                }
            },
        )

    async def rollback(self, role: str, who: str) -> str:
        previous = self.manager.status[role].previous
        if previous is None:
            raise RollbackUnavailable(f"{role} has no previous version to roll back to")
        return await self.activate(role, previous, who)

    async def refresh(self) -> None:
        """Load whatever the stored document names and this replica does not serve yet.

        Every role is tried, so one that cannot load does not hold back the others. The document is adopted only
        once every role it names serves its version here: until then each poll tries again the roles that do not
        (a role already serving its version is not loaded again).
        """
        stored = await asyncio.to_thread(read_document, self.objects, ACTIVE_KEY, ActiveDocument)
        if stored is None or stored.version <= self.document.version:
            return
        versions = await asyncio.to_thread(self._versions, stored)
        converged = True
        for role, version in versions.items():
            status = self.manager.status[role]
            if status.version != version:
                try:
                    await self.manager.activate(role, version, wanted=partial(self._wanted, role, version, stored))
                except LOAD_ERRORS as error:
                    self._not_converged.log(
                        role,
                        f"{version}: {error}",
                        logging.ERROR,
                        "could not converge %s on %s (retried at every poll): %s",
                        role,
                        version,
                        error,
                    )
                    converged = False
                else:
                    self._not_converged.forget(role)
                    converged = converged and status.version == version
        if converged and stored.version > self.document.version:
            self.document = stored

    def _versions(self, document: ActiveDocument) -> dict[str, str]:
        """The version each role of this replica that ``document`` names is to serve: an alias it names (an operator
        may write ``stable``) resolved in the store, since a role serves versions (compared with the alias, it never
        would, and each poll loaded it again). An alias that cannot be resolved now stays as it is: loading it fails
        with the reason, and the next poll tries again."""
        versions = {}
        for role, ref in document.active.items():
            status = self.manager.status.get(role)
            if status is not None:
                try:
                    versions[role] = self.manager.store.resolve(status.name, ref)
                except (ArtifactError, OSError):
                    versions[role] = ref
        return versions

    def _wanted(self, role: str, version: str, stored: ActiveDocument) -> bool:
        """Whether ``role`` should still load ``version`` of ``stored``, once no activation of it is under way: not
        when it serves it already, nor when this replica has recorded a newer document since ``stored`` was read
        (an admin activation here: the stale document would undo it until the next poll)."""
        return self.manager.status[role].version != version and self._recorded <= stored.version


async def adopt_stored_versions(active: ActiveModels) -> None:
    """Before the first load: serve the versions the store's document names, not only the configured ones."""
    stored = await asyncio.to_thread(read_document, active.objects, ACTIVE_KEY, ActiveDocument)
    if stored is None:
        return
    for role, version in stored.active.items():
        if role in active.manager.status:
            active.manager.status[role].ref = version
    active.document = stored


async def poll_store(
    params: ParamsService,
    active: ActiveModels,
    interval: float,
    follow_up: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Every ``interval`` seconds, apply newer parameters and model versions, and retry models that failed; then
    start ``follow_up()``, for the models loaded since (``app.services.LoadFollowUps``), in the background.

    Each step fails on its own: unreadable parameters must not stop the models converging, nor a role that
    cannot load stop the failed ones being retried; and nothing ends the loop, the replicas' only way to converge.
    The follow-up is not awaited: a deferred NST warm-up queued on its slot's thread behind a painting (up to a
    minute) must not hold back the next polls. One runs at a time (a poll while it runs starts none); its failure
    is logged like a step's.
    """
    follow_ups: asyncio.Task[None] | None = None
    failures = ReasonsLogged(log)  # each step's failures, logged once per reason while they last
    try:
        while True:
            await asyncio.sleep(interval)
            await _poll_step("apply the stored parameters", params.refresh, failures)
            await _poll_step("converge on the stored model versions", active.refresh, failures)
            await _poll_step("retry the models that failed to load", active.manager.retry_failed, failures)
            if follow_up is not None and (follow_ups is None or follow_ups.done()):
                follow_ups = asyncio.create_task(
                    _poll_step("warm up the models loaded since", follow_up, failures), name="load-follow-ups"
                )
    finally:
        if follow_ups is not None and not follow_ups.done():
            follow_ups.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow_ups


async def _poll_step(what: str, step: Callable[[], Awaitable[object]], failures: ReasonsLogged) -> None:
    """``step()``, its failure logged: a store error as a warning (the store away, a document malformed), anything
    else with its traceback (a bug; the poll goes on, to converge on whatever it still can).

    ``failures`` (the poll's) logs a failure once per reason while it lasts, not at every poll (an S3 outage wrote
    three lines every 10 s, one per step, for as long as it lasted), and the step's first success after it says so.
    """
    try:
        await step()
    except (ArtifactError, OSError) as error:
        failures.log(what, reason_of(error), logging.WARNING, "could not %s: %s", what, error)
    except Exception as error:
        failures.log(what, reason_of(error), logging.ERROR, "could not %s", what, exc_info=True)
    else:
        if failures.forget(what):
            log.info("could %s again", what)
