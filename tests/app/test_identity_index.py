"""The in-memory index, the thresholds table and the repository's change feed, without HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from app.errors import NotFound
from app.identities import repository
from app.identities.database import migrate, open_engine
from app.identities.index import FaceIndex
from app.identities.repository import StoredFace
from app.identities.thresholds import Thresholds, distance_of, similarity_of, thresholds_of
from tests.support.identity_fakes import add_fake_embedder, descriptor_of

A, B, C = descriptor_of((1, 0, 0)), descriptor_of((0, 1, 0)), descriptor_of((0, 0, 1))


def face(face_id: str, identity_id: str, descriptor: np.ndarray) -> StoredFace:
    return StoredFace(face_id, identity_id, identity_id.upper(), descriptor)


def test_an_identity_scores_its_best_face_and_candidates_come_best_first() -> None:
    index = FaceIndex("e/v1").with_changes([face("f1", "a", A), face("f2", "a", B), face("f3", "c", C)])
    query = (0.6 * B + 0.4 * C) / np.linalg.norm(0.6 * B + 0.4 * C)
    [matches] = index.search(query[None], top_k=5)
    assert [m.identity_id for m in matches] == ["a", "c"]  # "a" through its face B
    assert matches[0].similarity == pytest.approx(float(query @ B), abs=1e-6)
    assert index.search(query[None], top_k=1)[0][0].name == "A"


def test_changes_are_idempotent_and_a_deleted_identity_never_comes_back() -> None:
    index = FaceIndex("e/v1").with_changes([face("f1", "a", A), face("f2", "b", B)])
    assert index.with_changes([face("f1", "a", A)]).size == 2
    deleted = index.with_changes([], ["a"])
    assert deleted.size == 1 and deleted.identity_ids == ("b",)
    late = deleted.with_changes([face("f1", "a", A), face("f9", "a", C)])  # a poll from before the delete
    assert late.size == 1 and [m.identity_id for m in late.search(A[None], 5)[0]] == ["b"]
    assert deleted.with_changes([], ["b"]).search(A[None], 5) == [[]]


def test_the_identify_threshold_is_the_entry_of_the_largest_size_not_above_the_gallery() -> None:
    table = Thresholds(0.55, ((1, 0.80), (100, 0.84), (1000, 0.86)))
    assert [table.identify_similarity(n) for n in (0, 1, 99, 100, 5000)] == [0.80, 0.80, 0.80, 0.84, 0.86]
    assert similarity_of(distance_of(0.8)) == pytest.approx(0.8)


def test_thresholds_come_from_the_manifest_or_dlibs_distance(tmp_path: Path) -> None:
    manifest = add_fake_embedder(tmp_path)
    assert thresholds_of(manifest).verify_distance == 0.55
    bare = thresholds_of(manifest.model_copy(update={"hyperparameters": {}}))
    assert bare.verify_distance == 0.6 and bare.identify == ((1, pytest.approx(0.82)),)


def test_the_change_feed_gives_new_faces_of_one_embedder_and_deletions_since_a_cursor(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    migrate(engine)  # a second upgrade finds the schema at head
    ada, _ = repository.enrol(engine, "Ada", [A], "e/v1")
    first = repository.changes_since(engine, 0, "e/v1")
    assert [f.identity_id for f in first.faces] == [ada] and first.deleted == []
    bob, _ = repository.enrol(engine, "Bob", [B], "e/v1")
    repository.add_faces(engine, ada, [C], "e/v2")
    repository.delete(engine, ada)
    later = repository.changes_since(engine, first.revision, "e/v1")
    assert [f.identity_id for f in later.faces] == [bob] and later.deleted == [ada]
    assert later.revision == first.revision + 3
    assert repository.changes_since(engine, later.revision, "e/v1").faces == []
    assert repository.changes_since(engine, 0, "e/v2").faces == []  # its identity is deleted
    with pytest.raises(NotFound):
        repository.get(engine, ada, "e/v1")
    records, total = repository.page(engine, 10, 0, "e/v1")
    assert total == 1 and [(r.name, r.faces, r.other_faces) for r in records] == [("Bob", 1, 0)]


def test_a_database_migrated_by_a_newer_release_is_used_as_it_is(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    migrate(engine)  # logs a warning instead of failing the replica's start
    identity_id, _ = repository.enrol(engine, "Ada", [A], "e/v1")
    assert repository.get(engine, identity_id, "e/v1").faces == 1
