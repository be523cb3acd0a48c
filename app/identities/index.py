"""An exact in-memory index of enrolled faces: one matrix of L2-normalised descriptors, searched by a product.

Immutable snapshots: a change builds a new ``FaceIndex`` and the gallery swaps the reference, so a search
never sees half an update and needs no lock. Changes are idempotent (faces keyed by id) and deleted
identities are remembered, so a change read twice, or a late read from before a deletion, never brings a
deleted face back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import compress

import numpy as np

from app.identities.repository import StoredFace


@dataclass(frozen=True)
class Match:
    identity_id: str
    name: str
    similarity: float


@dataclass(frozen=True)
class FaceIndex:
    embedder: str  # descriptors of one embedder version only: others are never compared
    dim: int = 0
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (N, D) float32
    face_ids: tuple[str, ...] = ()
    owners: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (N,) index into identity_ids
    identity_ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    deleted: frozenset[str] = frozenset()
    # Lookups kept with the snapshot, so that a change costs what it changes and C-level copies, not a Python loop
    # over every face: adding one face to 10,000 took 17 ms on the event loop (more than building it whole), 68 ms
    # at 50,000, for every poll that brought one enrolment.
    known: frozenset[str] = frozenset()  # face_ids as a set
    positions: dict[str, int] = field(default_factory=dict)  # identity id -> its index in identity_ids

    @property
    def size(self) -> int:
        """Enrolled faces (the gallery size the identify threshold depends on)."""
        return len(self.face_ids)

    def with_changes(self, faces: list[StoredFace], deleted: list[str] | tuple[str, ...] = ()) -> FaceIndex:
        """A new index with ``faces`` added (those already present or of deleted identities skipped)."""
        newly = frozenset(deleted) - self.deleted
        gone = self.deleted | newly if newly else self.deleted
        fresh = [f for f in faces if f.id not in self.known and f.identity_id not in gone]
        if len({f.id for f in fresh}) != len(fresh):  # a face listed twice in one change
            fresh = list({f.id: f for f in fresh}.values())
        dropped = [self.positions[i] for i in newly if i in self.positions]
        if not fresh and not dropped:
            return self if not newly else replace(self, deleted=gone)  # the usual poll: nothing changed
        base = self._without(dropped) if dropped else self
        return base._with_faces(fresh, gone)

    def _without(self, dropped: list[int]) -> FaceIndex:
        """This index without the identities at ``dropped`` and their faces (numpy and C-level copies)."""
        alive = np.ones(len(self.identity_ids), dtype=bool)
        alive[dropped] = False
        keep = alive[self.owners]  # (N,)
        renumber = np.cumsum(alive) - 1  # (I,) old identity index -> new
        identity_ids = tuple(compress(self.identity_ids, alive))
        return replace(
            self,
            matrix=np.ascontiguousarray(self.matrix[keep]),
            face_ids=tuple(compress(self.face_ids, keep)),
            owners=renumber[self.owners[keep]],
            identity_ids=identity_ids,
            names=tuple(compress(self.names, alive)),
            known=self.known.difference(compress(self.face_ids, ~keep)),
            positions={identity_id: i for i, identity_id in enumerate(identity_ids)},
        )

    def _with_faces(self, fresh: list[StoredFace], gone: frozenset[str]) -> FaceIndex:
        """This index with ``fresh`` appended (new identities after the known ones)."""
        if not fresh:
            return replace(self, deleted=gone)
        positions, identity_ids, names = self.positions, list(self.identity_ids), list(self.names)
        new = {f.identity_id: f.name for f in fresh if f.identity_id not in positions}
        if new:
            positions = {**positions, **{identity_id: len(identity_ids) + i for i, identity_id in enumerate(new)}}
            identity_ids += new
            names += new.values()
        dim = self.dim or len(fresh[0].descriptor)
        added = np.array([f.descriptor for f in fresh], np.float32).reshape(-1, dim)  # (F, D)
        return replace(
            self,
            dim=dim,
            matrix=np.ascontiguousarray(np.concatenate([self.matrix.reshape(-1, dim), added])),  # (N, D)
            face_ids=self.face_ids + tuple(f.id for f in fresh),
            owners=np.concatenate([self.owners, np.array([positions[f.identity_id] for f in fresh], np.int64)]),
            identity_ids=tuple(identity_ids),
            names=tuple(names),
            deleted=gone,
            known=self.known.union(f.id for f in fresh),
            positions=positions,
        )

    def search(self, queries: np.ndarray, top_k: int) -> list[list[Match]]:
        """For each query (Q, D), the ``top_k`` identities by their best face's similarity, best first."""
        if self.size == 0:
            return [[] for _ in range(len(queries))]
        similarities = queries.astype(np.float32) @ self.matrix.T  # (Q, N)
        results = []
        for row in similarities:
            best = np.full(len(self.identity_ids), -np.inf, np.float32)
            np.maximum.at(best, self.owners, row)  # (I,) each identity's best face
            k = min(top_k, len(best))
            top = np.argpartition(-best, k - 1)[:k]
            top = top[np.argsort(-best[top])]
            # a float32 dot product of unit vectors may land a hair outside [-1, 1]: a cosine never does
            scores = np.clip(best[top], -1.0, 1.0)
            results.append(
                [Match(self.identity_ids[i], self.names[i], float(s)) for i, s in zip(top, scores, strict=True)]
            )
        return results
