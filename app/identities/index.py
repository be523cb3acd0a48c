"""An exact in-memory index of enrolled faces: one matrix of L2-normalised descriptors, searched by a product.

Immutable snapshots: a change builds a new ``FaceIndex`` and the gallery swaps the reference, so a search
never sees half an update and needs no lock. Changes are idempotent (faces keyed by id) and deleted
identities are remembered, so a change read twice, or a late read from before a deletion, never brings a
deleted face back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    @property
    def size(self) -> int:
        """Enrolled faces (the gallery size the identify threshold depends on)."""
        return len(self.face_ids)

    def with_changes(self, faces: list[StoredFace], deleted: list[str] | tuple[str, ...] = ()) -> FaceIndex:
        """A new index with ``faces`` added (those already present or of deleted identities skipped)."""
        gone = self.deleted | frozenset(deleted)
        if not faces and gone == self.deleted:
            return self  # the usual poll: nothing changed
        known = set(self.face_ids)
        fresh = [f for f in faces if f.id not in known and f.identity_id not in gone]
        keep = np.array([self.identity_ids[o] not in gone for o in self.owners], dtype=bool)
        if not fresh and keep.all():
            return FaceIndex(**{**self.__dict__, "deleted": gone})
        ids = [i for i, k in zip(self.face_ids, keep, strict=True) if k] + [f.id for f in fresh]
        owner_ids = [self.identity_ids[o] for o in self.owners[keep]] + [f.identity_id for f in fresh]
        names = {self.identity_ids[o]: self.names[o] for o in self.owners[keep]} | {
            f.identity_id: f.name for f in fresh
        }
        identity_ids = tuple(names)
        position = {identity_id: i for i, identity_id in enumerate(identity_ids)}
        dim = self.dim or len(fresh[0].descriptor)
        added = np.array([f.descriptor for f in fresh], np.float32).reshape(-1, dim)  # (F, D)
        return FaceIndex(
            embedder=self.embedder,
            dim=dim,
            matrix=np.ascontiguousarray(np.concatenate([self.matrix[keep].reshape(-1, dim), added])),  # (N, D)
            face_ids=tuple(ids),
            owners=np.array([position[o] for o in owner_ids], dtype=np.int64),
            identity_ids=identity_ids,
            names=tuple(names[i] for i in identity_ids),
            deleted=gone,
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
            results.append([Match(self.identity_ids[i], self.names[i], float(best[i])) for i in top])
        return results
