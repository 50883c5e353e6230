"""The store's connection to its database: SQLite through the standard sqlite3 module, PostgreSQL
through asyncpg, both behind one small interface so each store operation is written once.

An operation is a coroutine function of a `Transaction`, run whole by `Database.transaction`:
committed when it returns, rolled back when it raises. SQL is written once, with PostgreSQL's
numbered parameters ($1, $2, ...); SQLite reads the same numbers as ?1, ?2, ...

SQLite runs on the event loop's own thread. A transaction of the per-message path is a handful of
statements on pages in memory, a few tens of microseconds; handing each one to a thread of its own
and back cost more than running it (the hand-over, and the thread waiting for the interpreter
lock while the event loop is busy: `make bench`, instant scenario). Two things could still stall
the loop, and are kept off it: waiting for another process's write lock (busy_timeout is 0; a
busy database is retried after an asyncio sleep), and WAL checkpoints, which copy pages into the
database file and sync it (automatic checkpoints are off; a thread of the store runs them).

SQLAlchemy and alembic still own the schema: migrations run through them once, at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import SettingsError

T = TypeVar("T")


class Row(Protocol):
    """A result row of either driver (a tuple, an asyncpg Record): by position or unpacked."""

    def __getitem__(self, index: int) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


_MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: every process takes this PostgreSQL lock before migrating, so only one does.
_MIGRATION_LOCK_KEY = 7_316_001
# How long an operation waits for another process's SQLite write lock before the store counts
# as unavailable (the former busy_timeout).
_SQLITE_BUSY_SECONDS = 5.0
_SQLITE_CHECKPOINT_SECONDS = 1.0
_PARAMETER = re.compile(r"\$(\d+)")


class Transaction(Protocol):
    async def fetch_one(self, sql: str, *args: Any) -> Row | None: ...

    async def fetch_all(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Runs one statement; returns how many rows it changed."""
        ...

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None: ...


class Database(Protocol):
    dialect: str
    # What this driver raises when the database is lost, refused or broken; the store lets a
    # constraint violation (a bug, not an outage) through as it is.
    unavailable: tuple[type[BaseException], ...]

    async def transaction(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """One statement, a transaction of its own; returns how many rows it changed."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


async def connect(database_url: str) -> Database:
    """Connects and brings the schema up to date. Raises SettingsError for a URL of neither kind,
    and the driver's own errors (see Database.unavailable) when the database can't be used."""
    if database_url.startswith("sqlite:///") and len(database_url) > len("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        await asyncio.to_thread(_private_files, path)
        await asyncio.to_thread(_migrate_sqlite, database_url)
        return SqliteDatabase(path)
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            await _migrate_postgres("postgresql+asyncpg://" + database_url.removeprefix(prefix))
            pool = await asyncpg.create_pool(
                database_url,
                min_size=1,
                max_size=20,
                max_inactive_connection_lifetime=300,
                reset=_keep_session,
            )
            return PostgresDatabase(pool)
    raise SettingsError(
        "MESSAGELOG_DATABASE_URL must look like sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


def _private_files(path: str) -> None:
    """Makes the SQLite database (and its journal files, if any) readable by this user only: it
    holds messages until they are purged. SQLite creates the journal files with the database's
    own mode, so creating the database 0600 before SQLite opens it covers them too."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _migrate_sqlite(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            _upgrade_to_head(connection)
    finally:
        engine.dispose()


async def _migrate_postgres(url: str) -> None:
    engine = create_async_engine(url)
    try:

        def work(connection: Connection) -> None:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            _upgrade_to_head(connection)

        async with engine.begin() as connection:
            await connection.run_sync(work)
    finally:
        await engine.dispose()


class SqliteDatabase:
    dialect = "sqlite"
    unavailable: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str) -> None:
        self._path = path
        # Transactions are begun and ended explicitly (isolation_level=None).
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        _pragmas(self._connection)
        self._connection.execute("PRAGMA wal_autocheckpoint=0")
        self._sql: dict[str, str] = {}
        self._checkpoints = asyncio.get_running_loop().create_task(self._checkpoint_periodically())

    async def transaction(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        pause = 0.001
        give_up = time.monotonic() + _SQLITE_BUSY_SECONDS
        while True:
            try:
                return self._run(work)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def execute(self, sql: str, *args: Any) -> int:
        async def statement(tx: Transaction) -> int:
            return await tx.execute(sql, *args)

        return await self.transaction(statement)

    def _run(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = _run_now(work(_SqliteTransaction(connection, self._sql)))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return result

    async def ping(self) -> None:
        """Answers once this process could write: another process holding the write lock longer
        than the caller waits is as unusable as a database that is gone."""

        async def nothing(_: Transaction) -> None:
            return None

        await self.transaction(nothing)

    async def close(self) -> None:
        self._checkpoints.cancel()
        await asyncio.wait([self._checkpoints])
        await asyncio.to_thread(self._checkpoint)
        self._connection.close()

    async def _checkpoint_periodically(self) -> None:
        while True:
            await asyncio.sleep(_SQLITE_CHECKPOINT_SECONDS)
            try:
                await asyncio.to_thread(self._checkpoint)
            except sqlite3.Error:
                # The WAL only grows meanwhile; the next round tries again.
                continue

    def _checkpoint(self) -> None:
        # A connection per checkpoint: it must not be the event loop's, and a checkpoint a second
        # costs far more than opening a file.
        connection = sqlite3.connect(self._path, isolation_level=None)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()


def _pragmas(connection: sqlite3.Connection) -> None:
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=0",
        "foreign_keys=ON",
        # 64 MiB of page cache (the default is 2 MiB): with millions of rows the indexes every
        # message touches no longer fit the default, and each claim reads pages back from the OS.
        "cache_size=-65536",
    ):
        connection.execute(f"PRAGMA {pragma}")


def _run_now(step: Coroutine[Any, Any, T]) -> T:
    """Runs a SQLite transaction's coroutine to its end without the event loop: its statements
    never wait, and if it waited for anything else another call could interleave its own."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    step.close()
    raise RuntimeError("a SQLite transaction awaited something other than its own statements")


class _SqliteTransaction:
    def __init__(self, connection: sqlite3.Connection, translated: dict[str, str]) -> None:
        self._connection = connection
        self._translated = translated

    def _sql(self, sql: str) -> str:
        translated = self._translated.get(sql)
        if translated is None:
            translated = self._translated[sql] = _PARAMETER.sub(r"?\1", sql)
        return translated

    async def fetch_one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._connection.execute(self._sql(sql), args).fetchone()
        return row

    async def fetch_all(self, sql: str, *args: Any) -> list[Row]:
        return self._connection.execute(self._sql(sql), args).fetchall()

    async def execute(self, sql: str, *args: Any) -> int:
        return self._connection.execute(self._sql(sql), args).rowcount

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(self._sql(sql), args)


class PostgresDatabase:
    dialect = "postgresql"
    unavailable: tuple[type[BaseException], ...] = (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
        TimeoutError,
    )

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def transaction(self, work: Callable[[Transaction], Coroutine[Any, Any, T]]) -> T:
        async with self._pool.acquire() as connection, connection.transaction():
            return await work(_PostgresTransaction(connection))

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._pool.acquire() as connection:
            return _changed(await connection.execute(sql, *args))

    async def ping(self) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()


class _PostgresTransaction:
    def __init__(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._connection = connection

    async def fetch_one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._connection.fetchrow(sql, *args)
        return row

    async def fetch_all(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._connection.fetch(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        return _changed(await self._connection.execute(sql, *args))

    async def execute_many(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, args)


def _changed(status: str) -> int:
    """How many rows a statement changed, from PostgreSQL's reply: "UPDATE 3", "INSERT 0 1"."""
    return int(status.rsplit(" ", 1)[-1])


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset of a connection it takes back: only a transaction left open (by a
    cancelled call) is rolled back. The store keeps no other session state (no SET, LISTEN or
    session locks), and asyncpg's full reset costs a round trip per transaction."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
