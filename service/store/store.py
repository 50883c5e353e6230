"""Store operations behind the digest logic: claim a message, lease a digest, record a write.

Every operation is one short transaction; no transaction is held open across a CRM call. Writes
to one digest are serialized by a lease row-update that works the same on SQLite and PostgreSQL,
so several server processes can share one PostgreSQL database.

Each operation is written once, as a function of a synchronous connection, and runs as one unit:
on PostgreSQL through SQLAlchemy's run_sync on the asyncpg connection; on SQLite on a thread of
its own with the standard sqlite3 driver, so a whole transaction costs one hand-over between
threads (over aiosqlite every statement, cursor and fetch was one, which made the store the
bottleneck of the whole service: `make bench`, instant scenario).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service import metrics
from service.config import SettingsError
from service.errors import LogNotFound, StoreUnavailable
from service.model import Entry, LogRequest
from service.store.schema import digests, messages

P = ParamSpec("P")
T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"
# Unconfirmed writes remembered per digest; more in a row means the CRM is failing every write.
_SENT_FINGERPRINTS_KEPT = 8
# Any fixed number: every process takes this PostgreSQL lock before migrating, so only one does.
_MIGRATION_LOCK_KEY = 7_316_001


class MessageState(StrEnum):
    PENDING = "pending"
    LOGGED = "logged"


@dataclass(frozen=True)
class ClaimedMessage:
    """Where a message stands: in which digest, and whether a CRM write already holds it."""

    digest_id: int
    crm_log_id: str | None
    state: MessageState
    logged_via: str | None
    owned: bool


@dataclass(frozen=True)
class StoredDigest:
    id: int
    crm_log_id: str | None
    ref: str
    # When a create was sent whose result was never recorded (epoch ms), else None.
    create_sent_ms: int | None
    # No write before this (epoch ms): an unanswered write may still land until then.
    settle_until_ms: int | None
    written_fingerprint: str | None
    sent_fingerprints: tuple[str, ...]
    # A person's edit of the record and the messages it holds; the other entries come after it.
    kept_body: str | None
    kept_ids: frozenset[str]
    entries: list[Entry]
    pending_ids: list[str]


@dataclass(frozen=True)
class Leased:
    """What the lease holder finds: its message (None if its first caller withdrew it) and, when
    the message still waits for a write, the digest to write."""

    message: ClaimedMessage | None
    digest: StoredDigest | None


# The statements of the per-message path, built once: building a statement anew for every call
# cost the store's thread about as much as executing it (`make bench`, instant scenario).
_B = sa.bindparam
_FIND_DIGEST = sa.select(digests.c.id, digests.c.crm_log_id).where(
    digests.c.scope == _B("scope"),
    digests.c.thread_key == _B("thread_key"),
    digests.c.local_date == _B("local_date"),
)
_FIND_MESSAGE = (
    sa.select(
        messages.c.digest_id, messages.c.state, messages.c.logged_via, messages.c.owner, digests.c.crm_log_id
    )
    .join(digests, digests.c.id == messages.c.digest_id)
    .where(messages.c.scope == _B("scope"), messages.c.message_id == _B("message_id"))
)
_TAKE_LEASE = (
    sa.update(digests)
    .where(
        digests.c.id == _B("digest"),
        sa.or_(
            digests.c.lease_owner.is_(None),
            digests.c.lease_owner == _B("owner"),
            digests.c.lease_expires_ms < _B("now"),
        ),
    )
    .values(lease_owner=_B("owner"), lease_expires_ms=_B("expires"))
)
_RELEASE_LEASE = (
    sa.update(digests)
    .where(digests.c.id == _B("digest"), digests.c.lease_owner == _B("owner"))
    .values(lease_owner=None, lease_expires_ms=None)
)
_LOAD_DIGEST = sa.select(
    digests.c.crm_log_id,
    digests.c.ref,
    digests.c.create_sent_ms,
    digests.c.settle_until_ms,
    digests.c.written_fingerprint,
    digests.c.sent_fingerprints,
    digests.c.kept_body,
).where(digests.c.id == _B("digest"))
_LOAD_ENTRIES = (
    sa.select(messages.c.message_id, messages.c.state, messages.c.entry, messages.c.in_kept)
    .where(messages.c.digest_id == _B("digest"))
    .order_by(messages.c.created_ms, messages.c.message_id)
)
_CREATE_SENT = (
    sa.update(digests)
    .where(digests.c.id == _B("digest"), digests.c.create_sent_ms.is_(None))
    .values(create_sent_ms=_B("now"))
)
_OURS = digests.c.lease_owner == _B("owner")
_RECORD_DIGEST = (
    sa.update(digests)
    .where(digests.c.id == _B("digest"))
    .values(
        crm_log_id=_B("log_id"),
        create_sent_ms=None,
        written_fingerprint=_B("fingerprint"),
        sent_fingerprints=None,
        updated_ms=_B("now"),
        lease_owner=sa.case((_OURS, None), else_=digests.c.lease_owner),
        lease_expires_ms=sa.case((_OURS, None), else_=digests.c.lease_expires_ms),
    )
)
_FORGET_EDIT = sa.update(digests).where(digests.c.id == _B("digest")).values(kept_body=None)
_FORGET_KEPT = sa.update(messages).where(messages.c.digest_id == _B("digest")).values(in_kept=False)
_RECORD_MESSAGES = (
    sa.update(messages)
    .where(
        messages.c.digest_id == _B("digest"),
        messages.c.message_id.in_(_B("ids", expanding=True)),
        messages.c.state == MessageState.PENDING.value,
    )
    .values(state=MessageState.LOGGED.value, logged_via=_B("via"))
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _guard(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Reports a lost or refused database as StoreUnavailable, without the SQL or its parameters."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except IntegrityError:
            raise
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailable("the message store is unavailable; retry later") from exc

    return metrics.timed_store_operation(wrapper)


def engine_url(database_url: str) -> str:
    if database_url.startswith("sqlite:///") and len(database_url) > len("sqlite:///"):
        return database_url
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+asyncpg://" + database_url.removeprefix(prefix)
    raise SettingsError(
        "MESSAGELOG_DATABASE_URL must look like sqlite:///path/to/file.db or postgresql://user@host:5432/dbname"
    )


async def open_store(database_url: str) -> Store:
    """Connects and brings the schema up to date; raises StoreUnavailable when the database can't be used."""
    url = engine_url(database_url)
    engine: Engine | AsyncEngine
    if url.startswith("sqlite"):
        # One connection, used by the store's one SQLite thread: SQLite has one writer anyway.
        engine = sa.create_engine(url, pool_size=1, max_overflow=0, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800)
    store = Store(engine)
    try:
        await store.migrate()
    except StoreUnavailable:
        await store.close()
        raise
    return store


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=5000",
        "foreign_keys=ON",
        # 64 MiB of page cache (the default is 2 MiB): with millions of rows the indexes every
        # message touches no longer fit the default, and each claim reads pages back from the OS.
        "cache_size=-65536",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class Store:
    def __init__(self, engine: Engine | AsyncEngine) -> None:
        self._engine = engine
        self._insert = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
        self._new_digest = self._insert(digests).on_conflict_do_nothing(
            index_elements=["scope", "thread_key", "local_date"]
        )
        self._new_message = self._insert(messages).on_conflict_do_nothing(
            index_elements=["scope", "message_id"]
        )
        self._thread = ThreadPoolExecutor(1, "sqlite") if isinstance(engine, Engine) else None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def close(self) -> None:
        if isinstance(self._engine, AsyncEngine):
            await self._engine.dispose()
            return
        assert self._thread is not None
        # Waits for the transaction in progress, if any: it was handed over and must finish whole.
        await asyncio.get_running_loop().run_in_executor(None, self._thread.shutdown)
        self._engine.dispose()

    async def _in_transaction(self, work: Callable[[Connection], T]) -> T:
        """Runs work(connection) as one transaction: committed when it returns, rolled back when it raises."""
        engine = self._engine
        if isinstance(engine, AsyncEngine):
            async with engine.begin() as conn:
                return await conn.run_sync(work)

        def whole() -> T:
            with engine.begin() as conn:
                return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._thread, whole)

    @_guard
    async def migrate(self) -> None:
        def work(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            _upgrade_to_head(conn)

        await self._in_transaction(work)

    @_guard
    async def ping(self) -> None:
        await self._in_transaction(lambda conn: conn.execute(sa.text("SELECT 1")))

    @_guard
    async def claim(self, request: LogRequest, owner: str) -> ClaimedMessage:
        """Files the message under its thread's digest for the day, creating the digest row if needed."""
        now = _now_ms()

        key = {
            "scope": request.scope,
            "thread_key": request.thread_key,
            "local_date": request.local_date.isoformat(),
        }

        def work(conn: Connection) -> ClaimedMessage:
            # Look first: every message but a day's first finds its digest, with one statement.
            digest = conn.execute(_FIND_DIGEST, key).one_or_none()
            if digest is None:
                conn.execute(
                    self._new_digest,
                    {
                        **key,
                        "kind": request.kind.value,
                        "crm": request.crm,
                        "account_host": request.account[:253],
                        "crm_user_id": request.user.id,
                        "contact_id": request.contact.id,
                        "ref": secrets.token_hex(6),
                        "created_ms": now,
                        "updated_ms": now,
                    },
                )
                digest = conn.execute(_FIND_DIGEST, key).one()
            return self._file_message(conn, request, digest.id, digest.crm_log_id, owner, now)

        return await self._in_transaction(work)

    @_guard
    async def claim_in_log(self, request: LogRequest, owner: str) -> ClaimedMessage:
        """Files the message under the digest whose CRM record is request.log_id."""
        now = _now_ms()

        def work(conn: Connection) -> ClaimedMessage:
            digest = conn.execute(
                sa.select(digests.c.id, digests.c.crm_log_id)
                .where(digests.c.scope == request.scope, digests.c.crm_log_id == request.log_id)
                .order_by(digests.c.id.desc())
                .limit(1)
            ).one_or_none()
            if digest is None:
                raise LogNotFound(
                    f"no {request.crm} record {request.log_id!r} was logged by this service"
                    " for this user and contact"
                )
            return self._file_message(conn, request, digest.id, digest.crm_log_id, owner, now)

        return await self._in_transaction(work)

    def _file_message(
        self,
        conn: Connection,
        request: LogRequest,
        digest_id: int,
        crm_log_id: str | None,
        owner: str,
        now: int,
    ) -> ClaimedMessage:
        entry = request.entry
        filed = conn.execute(
            self._new_message,
            {
                "scope": request.scope,
                "message_id": entry.message_id,
                "digest_id": digest_id,
                "created_ms": entry.created_ms,
                "state": MessageState.PENDING.value,
                "owner": owner,
                "entry": entry.to_json(),
                "recorded_ms": now,
            },
        )
        if filed.rowcount == 1:
            # New, so pending and this call's, in the digest read in this transaction.
            return ClaimedMessage(digest_id, crm_log_id, MessageState.PENDING, None, owned=True)
        claimed = self._message(conn, request.scope, entry.message_id, owner)
        assert claimed is not None  # inserted or already there, in this transaction
        return claimed

    def _message(self, conn: Connection, scope: str, message_id: str, owner: str) -> ClaimedMessage | None:
        row = conn.execute(_FIND_MESSAGE, {"scope": scope, "message_id": message_id}).one_or_none()
        if row is None:
            return None
        return ClaimedMessage(
            digest_id=row.digest_id,
            crm_log_id=row.crm_log_id,
            state=MessageState(row.state),
            logged_via=row.logged_via,
            owned=row.owner == owner,
        )

    @_guard
    async def try_lease(self, digest_id: int, owner: str, ttl_ms: int) -> bool:
        def work(conn: Connection) -> bool:
            return self._try_lease(conn, digest_id, owner, ttl_ms)

        return await self._in_transaction(work)

    @_guard
    async def lease_and_load(
        self, digest_id: int, owner: str, ttl_ms: int, scope: str, message_id: str
    ) -> Leased | None:
        """Takes the digest's lease and, in the same transaction, reads what the holder needs;
        None when someone else holds the lease. (One transaction instead of three per message.)"""

        def work(conn: Connection) -> Leased | None:
            if not self._try_lease(conn, digest_id, owner, ttl_ms):
                return None
            message = self._message(conn, scope, message_id, owner)
            if message is None or message.state is not MessageState.PENDING:
                return Leased(message, None)
            return Leased(message, self._load(conn, message.digest_id))

        return await self._in_transaction(work)

    def _try_lease(self, conn: Connection, digest_id: int, owner: str, ttl_ms: int) -> bool:
        now = _now_ms()
        result = conn.execute(
            _TAKE_LEASE, {"digest": digest_id, "owner": owner, "now": now, "expires": now + ttl_ms}
        )
        return bool(result.rowcount == 1)

    @_guard
    async def release_lease(self, digest_id: int, owner: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(_RELEASE_LEASE, {"digest": digest_id, "owner": owner})

        return await self._in_transaction(work)

    @_guard
    async def load(self, digest_id: int) -> StoredDigest:
        def work(conn: Connection) -> StoredDigest:
            return self._load(conn, digest_id)

        return await self._in_transaction(work)

    def _load(self, conn: Connection, digest_id: int) -> StoredDigest:
        digest = conn.execute(_LOAD_DIGEST, {"digest": digest_id}).one()
        rows = conn.execute(_LOAD_ENTRIES, {"digest": digest_id}).all()
        return StoredDigest(
            id=digest_id,
            crm_log_id=digest.crm_log_id,
            ref=digest.ref,
            create_sent_ms=digest.create_sent_ms,
            settle_until_ms=digest.settle_until_ms,
            written_fingerprint=digest.written_fingerprint,
            sent_fingerprints=tuple((digest.sent_fingerprints or "").split()),
            kept_body=digest.kept_body,
            kept_ids=frozenset(row.message_id for row in rows if row.in_kept),
            entries=[Entry.from_json(row.entry) for row in rows],
            pending_ids=[row.message_id for row in rows if row.state == MessageState.PENDING],
        )

    @_guard
    async def create_sent(self, digest_id: int) -> None:
        """Notes, before it is sent, that a create for this digest may reach the CRM."""

        def work(conn: Connection) -> None:
            conn.execute(_CREATE_SENT, {"digest": digest_id, "now": _now_ms()})

        return await self._in_transaction(work)

    @_guard
    async def unsettled_until(self, digest_id: int, until_ms: int) -> None:
        """Holds back writes to this digest until until_ms: an unanswered write may land until then."""

        def work(conn: Connection) -> None:
            conn.execute(sa.update(digests).where(digests.c.id == digest_id).values(settle_until_ms=until_ms))

        return await self._in_transaction(work)

    @_guard
    async def record_written(
        self,
        digest_id: int,
        crm_log_id: str,
        message_ids: Sequence[str],
        via: str,
        fingerprint: str,
        owner: str,
    ) -> None:
        """The CRM now holds these messages in record crm_log_id, whose text has this fingerprint;
        owner's lease on the digest ends."""
        now = _now_ms()

        def work(conn: Connection) -> None:
            conn.execute(
                _RECORD_DIGEST,
                {
                    "digest": digest_id,
                    "log_id": crm_log_id,
                    "now": now,
                    "owner": owner,
                    "fingerprint": fingerprint,
                },
            )
            if via == "create":
                # A new record holds every message whole: nothing of a former record's edit is kept.
                conn.execute(_FORGET_EDIT, {"digest": digest_id})
                conn.execute(_FORGET_KEPT, {"digest": digest_id})
            if message_ids:
                conn.execute(_RECORD_MESSAGES, {"digest": digest_id, "ids": list(message_ids), "via": via})

        return await self._in_transaction(work)

    @_guard
    async def write_sent(self, digest_id: int, fingerprint: str, sent_before: Sequence[str]) -> None:
        """Notes, before it is sent, the text of a write that may reach the CRM."""
        recent = " ".join([*sent_before[-(_SENT_FINGERPRINTS_KEPT - 1) :], fingerprint])

        def work(conn: Connection) -> None:
            conn.execute(sa.update(digests).where(digests.c.id == digest_id).values(sent_fingerprints=recent))

        return await self._in_transaction(work)

    @_guard
    async def keep_edit(self, digest_id: int, body: str) -> None:
        """A person edited the record: keep their text, which holds every message logged so far."""

        def work(conn: Connection) -> None:
            conn.execute(sa.update(digests).where(digests.c.id == digest_id).values(kept_body=body))
            conn.execute(
                sa.update(messages)
                .where(messages.c.digest_id == digest_id, messages.c.state == MessageState.LOGGED.value)
                .values(in_kept=True)
            )

        return await self._in_transaction(work)

    @_guard
    async def withdraw(self, scope: str, message_id: str, owner: str) -> None:
        """Takes back a message this call handed over and no CRM write holds, so a retry starts clean."""

        def work(conn: Connection) -> None:
            conn.execute(
                sa.delete(messages).where(
                    messages.c.scope == scope,
                    messages.c.message_id == message_id,
                    messages.c.owner == owner,
                    messages.c.state == MessageState.PENDING.value,
                )
            )

        return await self._in_transaction(work)

    @_guard
    async def purge(self, before: date, batch: int = 1000) -> int:
        """Deletes up to `batch` digests of days before `before` whose every message is logged and
        that nobody is writing, with their messages; returns how many digests went."""
        now = _now_ms()
        pending = sa.exists().where(
            messages.c.digest_id == digests.c.id, messages.c.state == MessageState.PENDING.value
        )

        def work(conn: Connection) -> int:
            ids = (
                conn.execute(
                    sa.select(digests.c.id)
                    .where(
                        digests.c.local_date < before.isoformat(),
                        sa.or_(digests.c.lease_owner.is_(None), digests.c.lease_expires_ms < now),
                        ~pending,
                    )
                    .limit(batch)
                )
                .scalars()
                .all()
            )
            if ids:
                conn.execute(sa.delete(messages).where(messages.c.digest_id.in_(ids)))
                conn.execute(sa.delete(digests).where(digests.c.id.in_(ids)))
            return len(ids)

        return await self._in_transaction(work)


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
