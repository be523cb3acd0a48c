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
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.errors import DatabaseUnavailable, IncompatibleSchema
from app.identities.tables import Base

try:
    from psycopg.errors import QueryCanceled, ReadOnlySqlTransaction
except ImportError:  # SQLite only: psycopg is in the serve extra, but a development install may lack it

    class ReadOnlySqlTransaction(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's: nothing raises it without psycopg."""

    class QueryCanceled(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's: nothing raises it without psycopg."""


log = logging.getLogger("deepcanvas.identities")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant all replicas share: the key of PostgreSQL's advisory lock around the schema upgrade.
MIGRATION_LOCK_KEY = 0x6465_6570_6361_6E76  # "deepcanv"
# Errors that mean the database is away (not a bug in a statement: those stay 500s and get logged).
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, OSError)


# libpq's TCP settings: a database that stops answering without closing the connection (an RDS failover whose old
# primary's address goes dark, a partition) ends the connection in about 30 s instead of the kernel's 15 minutes.
TCP_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 30_000
STATEMENT_TIMEOUT_MS = 15_000
SQLITE_BUSY_TIMEOUT_S = 30  # how long a SQLite connection waits for another's lock
POOL_RECYCLE_S = 1800  # connections re-made every 30 min: none outlives a DNS change (failover) by long


def open_engine(url: str, timeout_s: float = 5.0, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Engine:
    """An engine for ``url``: short connect timeouts (a down database must answer 503 quickly)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, pool_pre_ping=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        connect_args={
            "connect_timeout": max(1, round(timeout_s)),
            # A query that hangs (a locked table, a stuck server) must end in a 503, not hold a request for ever.
            "options": f"-c statement_timeout={statement_timeout_ms}",
            **TCP_KEEPALIVE,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        },
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_s,
    )
    event.listen(engine, "handle_error", _read_only_is_a_disconnect)
    return engine


def _read_only_is_a_disconnect(context: ExceptionContext) -> None:
    """A read-only transaction where this service writes means the connection reaches a server that is no longer
    the primary (after an RDS or Aurora failover the old writer may come back as a reader, and pre-ping finds its
    connections alive): treat it as a disconnect, so the pool drops every connection and the next ones resolve the
    endpoint again, and the request gets a 503 instead of a 500. Before, every write answered 500 until a restart."""
    if isinstance(context.original_exception, ReadOnlySqlTransaction):
        context.is_disconnect = True


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA secure_delete=ON")  # a deletion overwrites what it frees (not every build's default)
    cursor.close()


def describe(engine: Engine) -> str:
    """The engine's URL without its password, for logs."""
    return engine.url.render_as_string(hide_password=True)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; replicas starting together take turns (a lock), the second finds it done.

    A database at a revision this release does not know (a newer release migrated it and the image was rolled
    back, or another application's Alembic table) is never touched: it is used as it is when it still has every
    table and column this release reads and writes (a newer release's migrations only added to it), and refused
    with ``IncompatibleSchema`` naming what is missing otherwise. Alembic's "Can't locate revision" used to be
    taken for "newer, compatible" whatever it meant, and a schema without this release's tables then answered a
    500 with a stack trace on every identity request.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with _migration_lock(engine) as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
        unknown = sorted(head for head in heads if head not in known)
        if unknown:
            problems = schema_problems(connection)
            connection.rollback()
            revisions = ", ".join(unknown)
            if problems:
                raise IncompatibleSchema(
                    f"the identity database's schema is at revision {revisions}, which this release does not know, "
                    f"and it is not one this release can use ({'; '.join(problems)}): deploy the release that "
                    "migrated it (the database was left as it is)"
                )
            log.warning(
                "identity database schema is at revision %s, newer than this release knows; it has every table and "
                "column this release uses, so it is used as it is",
                revisions,
            )
            return
        connection.commit()  # reading the version began a transaction: Alembic's own must be the outer one
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def schema_problems(connection: Connection) -> list[str]:
    """What this release needs and a database's schema lacks: its tables and columns, and no column it leaves out
    of its inserts that the database requires (a NOT NULL column without a default that a newer release added)."""
    inspector = inspect(connection)
    present = set(inspector.get_table_names())
    problems = []
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            problems.append(f"table {table.name} is missing")
            continue
        columns = {column["name"]: column for column in inspector.get_columns(table.name)}
        problems += [f"column {table.name}.{c.name} is missing" for c in table.columns if c.name not in columns]
        problems += [
            f"column {table.name}.{name} is required and this release does not write it"
            for name, column in columns.items()
            if name not in table.columns
            and not column["nullable"]
            and column.get("default") is None
            and not column.get("identity")
            and not column.get("computed")
        ]
    return problems


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One replica at a time upgrades the schema.

    PostgreSQL: a session advisory lock, waited for without the statement timeout (another replica's migration may
    take longer than a query may), and the migration's own statements run without it too. The lock is released
    after rolling back whatever failed; a connection whose release failed is discarded, never returned to the pool
    still holding the lock (every other replica then waited on it until its own statement timeout, for good).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SET statement_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                try:
                    connection.rollback()
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    connection.execute(text("RESET statement_timeout"))  # back to the connection's own setting
                    connection.commit()
                except SQLAlchemyError:
                    connection.invalidate()  # closing the session releases its advisory locks
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
    """Turn "the database is unreachable or failing" into ``DatabaseUnavailable``: the outage errors, and any error
    on which the connection was dropped as a disconnect (``_read_only_is_a_disconnect``)."""
    try:
        yield
    except DBAPIError as error:
        if not (isinstance(error, OUTAGE_ERRORS) or error.connection_invalidated):
            raise
        log.warning("identity database %s unavailable: %s", describe(engine), first_line(error))
        raise DatabaseUnavailable("the identity database is unavailable; retry shortly") from error
    except OUTAGE_ERRORS as error:
        log.warning("identity database %s unavailable: %s", describe(engine), first_line(error))
        raise DatabaseUnavailable("the identity database is unavailable; retry shortly") from error


def cancelled_by_the_server(error: DBAPIError) -> bool:
    """Whether PostgreSQL cancelled the statement (its ``statement_timeout``, or ``pg_cancel_backend``): the
    transaction was rolled back, so nothing of it was saved."""
    return isinstance(error.orig, QueryCanceled)


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
