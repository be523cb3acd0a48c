"""The identity database as an operator meets it: upgrades (replicas together, a schema this release does not
know, a migration that fails or waits), outages that do not refuse (a silent network, a failover to a reader).

Real SQLite files and real PostgreSQL clusters (skipped without Debian's binaries); no HTTP except where the
status a client sees is the point.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from app.errors import DatabaseUnavailable, IncompatibleSchema, WriteOutcomeUnknown
from app.identities import repository
from app.identities.database import MIGRATION_LOCK_KEY, migrate, open_engine
from app.identities.gallery import DATABASE_THREADS, IdentityGallery
from app.main import create_app
from app.settings import Settings
from tests.support.app_client import wait_ready
from tests.support.fakes import make_fake_store
from tests.support.identity_fakes import add_fake_embedder, descriptor_of, identity_plans, people_photo
from tests.support.postgres import PostgresCluster, SilentProxy, start_postgres

TOKEN = "s3cret-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
EMBEDDER = "e/v1"
A = descriptor_of((1, 0, 0))
HANG_S = 120  # bounds what must end: generous, a loaded machine is slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    started = start_postgres()
    if started is None:
        pytest.skip("PostgreSQL binaries are absent (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    try:
        yield started
    finally:
        started.remove()


def new_database(cluster: PostgresCluster) -> str:
    """The URL of a new, empty database on ``cluster`` (each test its own)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


def advisory_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        return int(connection.execute(text(query)).scalar_one())


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


# --- a schema this release does not know ----------------------------------------------------------------------


def _app(tmp_path: Path, database_url: str) -> TestClient:
    store = tmp_path / "store"
    make_fake_store(store)
    add_fake_embedder(store)
    settings = Settings(  # type: ignore[arg-type]
        store=store.as_uri(),
        cache_dir=tmp_path / "cache",
        admin_token=TOKEN,
        identity_poll_s=0.2,
        database_url=database_url,
    )
    return TestClient(create_app(settings, identity_plans()))


def test_another_applications_alembic_table_is_refused_with_the_reason_and_left_as_it_is(tmp_path: Path) -> None:
    """A database whose ``alembic_version`` names a revision this release does not know, without its tables (another
    application's Alembic, or a schema changed by hand): it was taken for "a newer release's" and used as it is,
    and every identity request then failed on the missing tables."""
    database = tmp_path / "other.sqlite3"
    with create_engine(f"sqlite:///{database}").begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('ae1027a6acf')"))
    with _app(tmp_path, f"sqlite:///{database}") as client:
        wait_ready(client)
        response = client.get("/identities", headers=ADMIN)
        assert response.status_code == 503 and response.headers["retry-after"], response.text
        detail = response.json()["detail"]
        assert "ae1027a6acf" in detail and "table identities is missing" in detail, detail
        assert client.get("/healthz").status_code == 200  # the rest of the service serves
    with create_engine(f"sqlite:///{database}").connect() as connection:
        tables = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'")).scalars().all()
        assert tables == ["alembic_version"]  # nothing created, nothing changed
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "ae1027a6acf"


def test_a_newer_schema_that_requires_a_column_this_release_never_writes_is_refused_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """Rolled back past a migration that added a required column: enrolments failed with a 500 (NOT NULL)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    ada, _ = repository.enrol(engine, "Ada", [A], EMBEDDER)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE faces ADD COLUMN quality REAL NOT NULL DEFAULT 1"))
        connection.execute(text("ALTER TABLE identities ADD COLUMN tenant VARCHAR(20) NOT NULL DEFAULT 'x'"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0002_newer'"))
    migrate(engine)  # required columns with defaults: this release's inserts still work, used as it is
    assert repository.enrol(engine, "Bob", [A], EMBEDDER)[0]
    with engine.begin() as connection:  # one without a default (SQLite adds none such: written into the schema)
        connection.execute(text("ALTER TABLE faces ADD COLUMN camera VARCHAR(20) NOT NULL DEFAULT 'x'"))
        connection.execute(text("PRAGMA writable_schema = ON"))
        connection.execute(
            text("UPDATE sqlite_master SET sql = replace(sql, :old, :new) WHERE name = 'faces'"),
            {"old": "camera VARCHAR(20) NOT NULL DEFAULT 'x'", "new": "camera VARCHAR(20) NOT NULL"},
        )
    engine.dispose()
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with pytest.raises(IncompatibleSchema, match=r"0002_newer.*faces\.camera is required"):
        migrate(engine)
    gallery = IdentityGallery(engine)
    try:
        with pytest.raises(IncompatibleSchema):
            run(gallery.enrol("Bob", [A], EMBEDDER))
    finally:
        gallery.close()
    assert repository.get(engine, ada, EMBEDDER).name == "Ada"  # nothing lost


# --- replicas upgrading together, a migration that fails or waits (PostgreSQL) --------------------------------


def test_replicas_upgrading_a_fresh_database_together_all_succeed_once(cluster: PostgresCluster) -> None:
    url = new_database(cluster)
    engines = [open_engine(url) for _ in range(6)]
    failures: list[BaseException] = []

    def upgrade(engine: Engine) -> None:
        try:
            migrate(engine)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=upgrade, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_S)
    assert not any(thread.is_alive() for thread in threads) and failures == []
    with engines[0].connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"]
        assert connection.execute(text("SELECT value FROM identity_revision")).scalars().all() == [0]
    assert advisory_locks(engines[0]) == 0
    for engine in engines:
        engine.dispose()


def test_a_migration_that_fails_releases_the_lock_and_is_refused_with_the_reason(cluster: PostgresCluster) -> None:
    """A table in the way (``identities`` of something else): the upgrade fails. The session's advisory lock used to
    stay with the pooled connection, and every other replica's upgrade then waited on it, for good."""
    url = new_database(cluster)
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE identities (id integer PRIMARY KEY)"))
    gallery = IdentityGallery(engine)
    try:
        with pytest.raises(IncompatibleSchema, match="could not be upgraded"):
            run(gallery.ensure_schema())
        assert advisory_locks(engine) == 0
        other = open_engine(url, statement_timeout_ms=2000)
        with other.connect() as connection:  # another replica takes the lock at once
            assert connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY}).scalar()
        other.dispose()
    finally:
        gallery.close()


def test_a_replica_waits_for_another_ones_migration_longer_than_a_query_may_take(cluster: PostgresCluster) -> None:
    """The lock was waited for under the statement timeout: a migration longer than it (a large table's new index)
    made every other replica fail its start-up upgrade with a timeout, again at each retry."""
    url = new_database(cluster)
    holder = create_engine(url)
    waiting = open_engine(url, statement_timeout_ms=200)
    outcome: list[BaseException | None] = []

    def upgrade() -> None:
        try:
            migrate(waiting)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    with holder.connect() as connection:  # another replica, migrating
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        thread = threading.Thread(target=upgrade)
        thread.start()
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        pause = threading.Event()  # never set: a wait that ends on its timeout
        for _ in range(HANG_S * 10):  # until the replica waits on the lock, or gave up
            if outcome or connection.execute(text(query)).scalar_one():
                break
            pause.wait(0.1)
        pause.wait(1.0)  # five statement timeouts: the waiting replica must still be waiting
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
        connection.commit()
    thread.join(HANG_S)
    assert outcome == [None]
    with waiting.connect() as connection:  # its pooled connection is back at its own statement timeout
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
    holder.dispose()
    waiting.dispose()


# --- outages that do not refuse ---------------------------------------------------------------------------------


def test_a_silent_database_answers_503_within_the_deadline_and_other_work_keeps_its_threads(
    cluster: PostgresCluster,
) -> None:
    """A database that stops answering without refusing (a failover's dark address, a partition): every identity
    call hung, the statement timeout never came back, and the hung calls held the default executor's threads,
    which model loads, store reads and image decoding need too."""
    url = new_database(cluster)
    proxy = SilentProxy(cluster.port)
    proxied = url.replace(f":{cluster.port}/", f":{proxy.port}/")
    gallery = IdentityGallery(open_engine(proxied), call_timeout_s=1)
    results: list[object] = []

    async def scenario() -> None:
        await gallery.enrol("Ada", [A], EMBEDDER)
        proxy.silent.set()
        calls = [gallery.page(10, 0, EMBEDDER) for _ in range(12)]
        results.extend(await asyncio.gather(*calls, return_exceptions=True))
        results.append(await asyncio.wait_for(asyncio.to_thread(lambda: "default executor free"), HANG_S))

    worker = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    try:
        worker.start()
        worker.join(HANG_S)
        assert not worker.is_alive(), "identity calls hung on a silent database"
    finally:
        proxy.close()
        gallery.close()
    *calls, default = results
    assert all(isinstance(r, DatabaseUnavailable) and "did not answer" in r.detail for r in calls), calls
    assert default == "default executor free"


def test_a_failover_to_a_read_only_server_is_a_503_and_heals_without_a_restart(cluster: PostgresCluster) -> None:
    """After an Aurora/RDS failover the old writer may answer as a reader: pre-ping finds its connections alive, so
    every write answered 500 (read-only transaction) until the replica was restarted."""
    url = new_database(cluster)
    name = url.rsplit("/", 1)[1]
    admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    engine = open_engine(url)
    gallery = IdentityGallery(engine)

    async def scenario() -> None:
        await gallery.enrol("Ada", [A], EMBEDDER)
        with admin.connect() as connection:
            connection.execute(text(f"ALTER DATABASE {name} SET default_transaction_read_only = on"))
        engine.dispose()  # the pool's connections now reach a "reader"
        await gallery.get((await gallery.page(1, 0, EMBEDDER))[0][0].id, EMBEDDER)  # reads work
        with pytest.raises(DatabaseUnavailable):
            await gallery.enrol("Bob", [A], EMBEDDER)
        with admin.connect() as connection:  # the endpoint reaches a writer again
            connection.execute(text(f"ALTER DATABASE {name} RESET default_transaction_read_only"))
        await gallery.enrol("Bob", [A], EMBEDDER)  # the pool dropped the reader's connections

    try:
        run(scenario())
        assert run(gallery.page(10, 0, EMBEDDER))[1] == 2  # type: ignore[index]
    finally:
        gallery.close()
        admin.dispose()


# --- deletion -------------------------------------------------------------------------------------------------


def test_a_deleted_persons_name_and_descriptors_leave_the_sqlite_files_while_the_service_runs(tmp_path: Path) -> None:
    """The rows went, but the write-ahead log kept the name and descriptor bytes for as long as the process ran."""
    engine = open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    rng = np.random.default_rng(7)
    for i in range(20):  # people who stay, on the same pages
        repository.enrol(engine, f"Person {i}", [unit(rng)], EMBEDDER)
    descriptors = [unit(rng), unit(rng)]
    gone, _ = repository.enrol(engine, "Zebulon Quixote", descriptors, EMBEDDER)
    repository.delete(engine, gone)
    files = b"".join(path.read_bytes() for path in tmp_path.glob("db.sqlite3*") if path.is_file())
    assert b"Zebulon Quixote" not in files
    assert not any(d.astype("<f4").tobytes() in files for d in descriptors)
    assert repository.page(engine, 100, 0, EMBEDDER)[1] == 20
    engine.dispose()


def test_a_reader_that_holds_the_wal_delays_a_deletions_erasure_which_happens_once_it_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkpoint's result was ignored: with a reader in the log past the busy timeout, the write-ahead log kept
    the deleted person's name and nothing said so. Now a warning (once) and the erasure is retried at each poll."""
    path = tmp_path / "db.sqlite3"
    gallery = IdentityGallery(open_engine(f"sqlite:///{path}"), call_timeout_s=HANG_S)

    def in_files(data: bytes) -> bool:
        return data in b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite3*") if p.is_file())

    async def scenario() -> None:
        gone = (await gallery.enrol("Zebulon Quixote", [A], EMBEDDER)).id
        await gallery.enrol("Ada", [descriptor_of((0, 1, 0))], EMBEDDER)
        reader = sqlite3.connect(path)  # another process's report, in the middle of a read transaction
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM identities").fetchone()
        try:
            await gallery.delete(gone)
            assert "the erasure is tried again" in caplog.text  # said at once, not left unsaid
            assert gallery.unerased and in_files(b"Zebulon Quixote")  # the reader's snapshot still needs the log
            await gallery.erase_deleted()  # the poll's retry, while the reader stays: still held, no second warning
            assert gallery.unerased
        finally:
            reader.close()
        sync = asyncio.create_task(gallery.keep_in_sync(lambda: EMBEDDER, 0.05))
        try:
            until = time.monotonic() + HANG_S
            while gallery.unerased and time.monotonic() < until:
                await asyncio.sleep(0.05)
        finally:
            sync.cancel()
        assert not gallery.unerased, "the erasure never happened after the reader closed"

    try:
        with caplog.at_level(logging.INFO, logger="deepcanvas.identities"):
            run(scenario())
    finally:
        gallery.close()
    assert not in_files(b"Zebulon Quixote") and not in_files(A.astype("<f4").tobytes())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "write-ahead log" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "deletions erased" in caplog.text


def test_an_erasure_that_fails_at_every_poll_is_logged_once_and_the_index_still_refreshes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure shared the poll's try with the refresh: while it failed, no poll read what other replicas wrote
    (here one enrolled through another engine), and the failure was logged with a stack trace at every poll."""
    path = tmp_path / "db.sqlite3"
    gallery = IdentityGallery(open_engine(f"sqlite:///{path}"), call_timeout_s=HANG_S)
    polls = 0

    def failing_erasure(engine: Engine) -> bool:
        nonlocal polls
        polls += 1
        raise RuntimeError("the erasure broke")

    async def scenario() -> None:
        await gallery.ensure_index(EMBEDDER)
        other = open_engine(f"sqlite:///{path}")
        repository.enrol(other, "Ada", [A], EMBEDDER)  # another replica's enrolment
        other.dispose()
        gallery.unerased = True
        monkeypatch.setattr(repository, "erase_deleted", failing_erasure)
        sync = asyncio.create_task(gallery.keep_in_sync(lambda: EMBEDDER, 0.05))
        try:
            until = time.monotonic() + HANG_S
            while (polls < 3 or gallery.loaded_index().size == 0) and time.monotonic() < until:
                await asyncio.sleep(0.05)
        finally:
            sync.cancel()

    try:
        with caplog.at_level(logging.WARNING, logger="deepcanvas.identities"):
            run(scenario())
    finally:
        gallery.close()
    assert gallery.loaded_index().size == 1, "the poll never refreshed the index while the erasure failed"
    assert polls >= 3 and gallery.unerased
    logged = [r for r in caplog.records if "the erasure broke" in r.getMessage()]
    assert len(logged) == 1, caplog.text


def unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(128).astype(np.float32)
    return vector / np.linalg.norm(vector)  # type: ignore[no-any-return]


def test_a_replica_that_starts_while_the_database_is_down_serves_once_it_is_back(cluster: PostgresCluster) -> None:
    """No restart needed: the schema upgrade and the first load happen at the first call after the outage."""
    url = new_database(cluster)
    cluster.stop()
    gallery = IdentityGallery(open_engine(url, timeout_s=1))
    try:
        with pytest.raises(DatabaseUnavailable):
            run(gallery.ensure_index(EMBEDDER))
        cluster.start()
        run(gallery.enrol("Ada", [A], EMBEDDER))
        assert gallery.loaded_index().size == 1
    finally:
        gallery.close()
        if not _running(cluster):  # the module's other tests need it
            cluster.start()


def _running(cluster: PostgresCluster) -> bool:
    return (cluster.data / "db" / "postmaster.pid").exists()


# --- writes past the deadline -----------------------------------------------------------------------------------


def _sqlite_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's write transaction on the file: the gallery's writes wait for it (up to SQLite's 30 s busy
    timeout), reads do not (WAL)."""
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _names(gallery: IdentityGallery) -> list[str]:
    gallery._threads.shutdown(wait=True)  # every write the gallery started has ended: saved or not
    return [r.name for r in repository.page(gallery.engine, 100, 0, EMBEDDER)[0]]


def _answer_and_names(gallery: IdentityGallery, scenario: Any, *after: Callable[[], object]) -> tuple[Any, list[str]]:
    """``scenario``'s answer, then the names saved once every write the gallery started has ended; the gallery
    closed (and ``after`` called) whatever happens."""
    try:
        return run(scenario), _names(gallery)
    finally:
        gallery.close()
        for cleanup in after:
            cleanup()


def test_an_enrolment_past_the_deadline_answers_504_outcome_unknown_not_503_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The deadline could not stop the thread: the enrolment was saved after the client was told 503 "retry
    shortly" with Retry-After, and a client that did enrolled the person twice."""
    path = tmp_path / "db.sqlite3"
    gallery = IdentityGallery(open_engine(f"sqlite:///{path}"), call_timeout_s=1)

    async def scenario() -> WriteOutcomeUnknown:
        await gallery.ensure_index(EMBEDDER)
        holder = _sqlite_write_lock(path)
        try:
            with pytest.raises(WriteOutcomeUnknown) as answered:
                await gallery.enrol("Ada Lovelace", [A], EMBEDDER)
        finally:
            holder.rollback()
            holder.close()
        return answered.value

    try:
        with caplog.at_level(logging.WARNING, logger="deepcanvas.identities"):
            answer = run(scenario())
            names = _names(gallery)
    finally:
        gallery.close()
    assert answer.status == 504 and answer.retry_after is None, answer
    assert "enrolment was saved is unknown" in answer.detail and "GET /identities" in answer.detail, answer.detail
    assert names == ["Ada Lovelace"]  # why: the database answered late and saved it
    assert "did not answer an enrolment within" in caplog.text  # not "a enrolment"
    assert "an enrolment that answered 504 was saved after all" in caplog.text


def test_a_deletion_past_the_deadline_answers_504_and_says_repeating_it_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    gallery = IdentityGallery(open_engine(f"sqlite:///{path}"), call_timeout_s=1)

    async def scenario() -> WriteOutcomeUnknown:
        ada = (await gallery.enrol("Ada", [A], EMBEDDER)).id
        holder = _sqlite_write_lock(path)
        try:
            with pytest.raises(WriteOutcomeUnknown) as answered:
                await gallery.delete(ada)
        finally:
            holder.rollback()
            holder.close()
        return answered.value

    answer, names = _answer_and_names(gallery, scenario())
    assert answer.retry_after is None and "404 once it is done" in answer.detail, answer.detail
    assert names == []


def test_an_enrolment_past_the_deadline_is_a_504_without_retry_after_over_http(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with _app(tmp_path, f"sqlite:///{path}") as client:
        wait_ready(client)
        assert client.get("/identities", headers=ADMIN).status_code == 200  # schema and index loaded
        client.app.state.gallery.call_timeout_s = 1  # type: ignore[attr-defined]
        photo = [("image", ("ada.png", people_photo((1, 0, 0)), "image/png"))]
        holder = _sqlite_write_lock(path)
        try:
            response = client.post("/identities", data={"name": "Ada Lovelace"}, files=photo, headers=ADMIN)
        finally:
            holder.rollback()
            holder.close()
        assert response.status_code == 504, response.text
        assert "retry-after" not in response.headers
        assert "check before enrolling the person again" in response.json()["detail"]
        until = time.monotonic() + HANG_S
        while client.get("/identities", headers=ADMIN).json()["total"] == 0 and time.monotonic() < until:
            time.sleep(0.05)
        assert [i["name"] for i in client.get("/identities", headers=ADMIN).json()["identities"]] == ["Ada Lovelace"]


def test_a_write_that_never_left_the_queue_is_a_503_with_retry_after_and_is_not_saved(tmp_path: Path) -> None:
    """Every database thread busy (hung calls): the enrolment never started, so retrying it is safe."""
    gallery = IdentityGallery(open_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}"), call_timeout_s=1)
    release = threading.Event()

    async def scenario() -> DatabaseUnavailable:
        await gallery.ensure_index(EMBEDDER)
        for _ in range(DATABASE_THREADS):
            gallery._threads.submit(release.wait, HANG_S)
        try:
            with pytest.raises(DatabaseUnavailable) as answered:
                await gallery.enrol("Ada Lovelace", [A], EMBEDDER)
        finally:
            release.set()
        return answered.value

    answer, names = _answer_and_names(gallery, scenario())
    assert answer.retry_after == 5 and "nothing was saved" in answer.detail, answer.detail
    assert names == []


def test_a_postgresql_write_that_waits_is_cancelled_server_side_before_the_deadline(cluster: PostgresCluster) -> None:
    """A write that waits (here for the revision row another transaction holds) ends on the server before the
    gallery's deadline, rolled back: a 503 whose detail says nothing was saved, which a retry cannot duplicate."""
    url = new_database(cluster)
    gallery = IdentityGallery(open_engine(url), call_timeout_s=HANG_S, write_margin_s=HANG_S - 2)
    holder = create_engine(url)

    async def scenario() -> DatabaseUnavailable:
        await gallery.enrol("Ada", [A], EMBEDDER)
        with holder.connect() as connection:
            connection.execute(text("UPDATE identity_revision SET value = value WHERE id = 1"))  # held until rollback
            with pytest.raises(DatabaseUnavailable) as answered:
                await gallery.enrol("Bob", [A], EMBEDDER)
            connection.rollback()
        await gallery.enrol("Cy", [A], EMBEDDER)  # the connection went back to the pool without the bound
        return answered.value

    answer, names = _answer_and_names(gallery, scenario(), holder.dispose)
    assert names == ["Ada", "Cy"]  # Bob was not saved after his 503
    assert answer.retry_after == 5 and "cancelled and nothing was saved" in answer.detail, answer.detail


def _lose_the_connection(_: object = None, *__: object) -> None:
    import psycopg

    raise psycopg.OperationalError("server closed the connection unexpectedly")


@pytest.mark.parametrize("change", ["enrolment", "addition of faces", "deletion"])
def test_a_connection_lost_during_the_commit_is_a_504_check_first_not_a_503_retry(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """The COMMIT reached the database, which saved it, and then the connection failed: that answered 503 "retry
    shortly" with Retry-After, and a client that did enrolled the person twice."""
    url = new_database(cluster)
    gallery = IdentityGallery(open_engine(url), call_timeout_s=HANG_S)
    dialect = gallery.engine.dialect
    real_commit = dialect.do_commit

    def commit_then_lose_the_answer(dbapi_connection: object) -> None:
        real_commit(dbapi_connection)  # type: ignore[arg-type]
        _lose_the_connection()

    async def scenario() -> WriteOutcomeUnknown:
        ada = (await gallery.enrol("Ada", [A], EMBEDDER)).id
        monkeypatch.setattr(dialect, "do_commit", commit_then_lose_the_answer)
        with pytest.raises(WriteOutcomeUnknown) as answered:
            if change == "enrolment":
                await gallery.enrol("Bob", [A], EMBEDDER)
            elif change == "addition of faces":
                await gallery.add_faces(ada, [A], EMBEDDER)
            else:
                await gallery.delete(ada)
        monkeypatch.setattr(dialect, "do_commit", real_commit)
        return answered.value

    try:
        answer = run(scenario())
        records = repository.page(gallery.engine, 100, 0, EMBEDDER)[0]
    finally:
        gallery.close()
    assert answer.status == 504 and answer.retry_after is None, answer
    assert f"whether the {change} was saved is unknown" in answer.detail and "GET /identities" in answer.detail, answer
    saved = {"enrolment": ["Ada", "Bob"], "deletion": []}.get(change, ["Ada"])
    assert [r.name for r in records] == saved  # it was saved: a retry would have saved it twice
    if change == "addition of faces":
        assert records[0].faces == 2


def test_a_connection_lost_before_the_commit_is_still_a_503_and_nothing_is_saved(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database(cluster)
    gallery = IdentityGallery(open_engine(url), call_timeout_s=HANG_S)
    dialect = gallery.engine.dialect
    real_execute = dialect.do_execute

    def lose_it_at_the_insert(cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO faces"):
            _lose_the_connection()
        real_execute(cursor, statement, *args)  # type: ignore[arg-type]

    async def scenario() -> DatabaseUnavailable:
        await gallery.ensure_index(EMBEDDER)
        monkeypatch.setattr(dialect, "do_execute", lose_it_at_the_insert)
        monkeypatch.setattr(dialect, "do_executemany", lose_it_at_the_insert)
        with pytest.raises(DatabaseUnavailable) as answered:
            await gallery.enrol("Bob", [A], EMBEDDER)
        monkeypatch.undo()
        return answered.value

    answer, names = _answer_and_names(gallery, scenario())
    assert answer.status == 503 and answer.retry_after == 5, answer
    assert names == []


def test_a_postgresql_write_whose_statements_each_wait_under_the_budget_is_cancelled_by_the_deadline(
    cluster: PostgresCluster,
) -> None:
    """``SET LOCAL statement_timeout`` bounded each statement, not the write: after a wait just under the budget
    (a lock on identities) the next statement (the faces' insert, waiting for another lock) had the whole budget
    again, so the enrolment was saved after its deadline had answered 504. Every statement now gets the time left."""
    url = new_database(cluster)
    gallery = IdentityGallery(open_engine(url), call_timeout_s=6, write_margin_s=2)  # 4 s on the server, 6 s in all
    holders = create_engine(url)
    released = threading.Event()

    def hold(table: str, seconds: float, ready: threading.Event) -> None:
        with holders.connect() as connection:
            connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            ready.set()
            released.wait(seconds)
            connection.rollback()

    async def scenario() -> BaseException:
        await gallery.enrol("Ada", [A], EMBEDDER)
        ready = [threading.Event(), threading.Event()]
        threads = [
            threading.Thread(target=hold, args=("identities", 3.0, ready[0])),  # under the 4 s budget
            threading.Thread(target=hold, args=("faces", HANG_S, ready[1])),  # until the answer
        ]
        for thread in threads:
            thread.start()
        for event in ready:
            event.wait(HANG_S)
        try:
            with pytest.raises((DatabaseUnavailable, WriteOutcomeUnknown)) as answered:
                await gallery.enrol("Bob", [A], EMBEDDER)
        finally:
            released.set()
            for thread in threads:
                thread.join(HANG_S)
        return answered.value

    answer, names = _answer_and_names(gallery, scenario(), holders.dispose)
    assert names == ["Ada"]  # Bob was not saved after his answer
    assert isinstance(answer, DatabaseUnavailable) and "cancelled and nothing was saved" in answer.detail, answer
