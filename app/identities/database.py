"""The identity database: engine, schema upgrade at start (safe when replicas start together), outages.

SQLite is the embedded default (WAL, a busy timeout so two processes on one file wait instead of failing);
PostgreSQL through psycopg is the deployed one. Any error that means "the database is away" becomes the
domain's ``DatabaseUnavailable`` (503 with Retry-After), never a 500.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.errors import DatabaseUnavailable

log = logging.getLogger("deepcanvas.identities")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant all replicas share: the key of PostgreSQL's advisory lock around the schema upgrade.
MIGRATION_LOCK_KEY = 0x6465_6570_6361_6E76  # "deepcanv"
# Errors that mean the database is away (not a bug in a statement: those stay 500s and get logged).
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, OSError)


def open_engine(url: str, timeout_s: float = 5.0) -> Engine:
    """An engine for ``url``: short connect timeouts (a down database must answer 503 quickly)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, pool_pre_ping=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        # A query that hangs (a partitioned network) must end in a 503, not hold a request for ever.
        connect_args={"connect_timeout": max(1, round(timeout_s)), "options": "-c statement_timeout=15000"},
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_s,
    )


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for logs."""
    return engine.url.render_as_string(hide_password=True)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; replicas starting together take turns (a lock), the second finds it done."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine) as connection:
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, "head")
        except CommandError as error:
            # A newer release migrated the database (a rolling deploy): migrations only add to the schema,
            # so this release's queries still work on it. Leave it as it is.
            log.warning("identity database schema is newer than this release (%s); using it as is", error)
        connection.commit()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    lock_path = Path(f"{database}.migrate.lock") if database and database != ":memory:" else None
    with contextlib.ExitStack() as stack:
        if lock_path is not None:
            handle = stack.enter_context(lock_path.open("a"))
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield stack.enter_context(engine.connect())


@contextlib.contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn "the database is unreachable or failing" into ``DatabaseUnavailable``."""
    try:
        yield
    except OUTAGE_ERRORS as error:
        log.warning("identity database %s unavailable: %s", describe(engine), _first_line(error))
        raise DatabaseUnavailable("the identity database is unavailable; retry shortly") from error


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
