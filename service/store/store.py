"""Store operations behind the digest logic: claim a message, lease a digest, record a write.

Every operation is one short transaction; no transaction is held open across a CRM call. Writes
to one digest are serialized by a lease row-update that works the same on SQLite and PostgreSQL,
so several server processes can share one PostgreSQL database.

Each operation is written once, as a coroutine function of a transaction (service.store.database),
in SQL that both databases read. The tables are made by the migrations in migrations/versions/.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import wraps
from typing import ParamSpec, TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError

from service import metrics
from service.config import SettingsError
from service.errors import LogNotFound, RecordDayMismatch, RecordKindMismatch, StoreUnavailable
from service.model import Entry, Kind, LogRequest, zone_from_label
from service.store.database import Database, PostgresDatabase, Row, SqliteDatabase, Transaction, connect
from service.store.sealing import Sealer, sealer_for

P = ParamSpec("P")
T = TypeVar("T")

# Unconfirmed writes remembered per digest; more in a row means the CRM is failing every write.
_SENT_FINGERPRINTS_KEPT = 8


class MessageState(StrEnum):
    PENDING = "pending"
    LOGGED = "logged"


class LogState(StrEnum):
    """Where a message stands for GetMessageLog: its MessageState, or failed (no call holds it)."""

    PENDING = "pending"
    LOGGED = "logged"
    FAILED = "failed"


@dataclass(frozen=True)
class FailedCall:
    """How a call that handed a message over ended: gRPC status name, ErrorInfo reason, the CRM
    reply's HTTP status (0 for none), and when (epoch ms)."""

    status: str
    reason: str
    crm_http_status: int
    at_ms: int


@dataclass(frozen=True)
class MessageLogFilter:
    """Which messages of one account (crm, account as LogRequest.account) to read; empty
    strings match everything."""

    crm: str
    account: str
    user_id: str = ""
    contact_id: str = ""
    message_id: str = ""
    thread_key: str = ""
    start_date: str = ""
    end_date: str = ""


@dataclass(frozen=True)
class MessageLog:
    """What the store knows of one message handed over for one scope: never its text."""

    local_date: str
    scope: str
    message_id: str
    state: LogState
    crm_log_id: str | None
    kind: str
    crm_user_id: str
    contact_id: str
    thread_key: str
    failures: int
    last_failure: FailedCall | None

    @property
    def key(self) -> tuple[str, str, str]:
        """Its place in ListMessageLogs' order."""
        return self.local_date, self.scope, self.message_id


@dataclass(frozen=True)
class ClaimedMessage:
    """Where a message stands: in which digest, and whether a CRM write already holds it."""

    digest_id: int
    crm_log_id: str | None
    state: MessageState
    logged_via: str | None
    owned: bool
    # The day of the digest that holds it, when it was there before this call (YYYY-MM-DD).
    local_date: str | None = None


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
    # The record's version as our last confirmed write left it (CRMs that write conditionally).
    crm_version: str | None
    # What the record holds (a day of a conversation, or one voicemail or fax), the local day it
    # is of, and the zone it is rendered in (None for digests stored before zones were kept).
    kind: Kind
    local_date: date
    zone_label: str | None
    # Which part of its conversation-day the record is (see RecordCap), and the CRM record of the
    # part before it.
    part: int
    continues_log_id: str | None
    entries: list[Entry]
    pending_ids: list[str]


@dataclass(frozen=True)
class RecordCap:
    """How much one CRM record holds; past it, the conversation's day continues in a record of its
    own (the next part) that names the one before. A record of thousands of messages would be
    re-rendered and re-uploaded whole at every append (at 5,000 messages, a 1.35 s stall and
    50 MB per append)."""

    # Messages filed in one record (a claim counts them; concurrent claims may pass it by a few).
    messages: int = 200
    # Bytes of rendered body after which a record takes no new messages.
    body_bytes: int = 256 * 1024


RECORD_CAP = RecordCap()


@dataclass(frozen=True)
class Leased:
    """What the lease holder finds: its message (None if its first caller withdrew it) and, when
    the message still waits for a write, the digest to write."""

    message: ClaimedMessage | None
    digest: StoredDigest | None


# With how many messages it holds (over the messages' digest index), to know whether it is full.
_FIND_DIGEST = (
    "SELECT d.id, d.crm_log_id, d.is_full, (SELECT count(*) FROM messages m WHERE m.digest_id = d.id)"
    " FROM digests d WHERE d.scope = $1 AND d.thread_key = $2 AND d.local_date = $3"
)
_NEW_DIGEST = (
    "INSERT INTO digests (scope, thread_key, local_date, kind, crm, account_host, crm_user_id, contact_id,"
    " ref, created_ms, updated_ms, zone, part, continues_log_id)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)"
    " ON CONFLICT (scope, thread_key, local_date) DO NOTHING RETURNING id"
)
_FIND_LOGGED_DIGEST = (
    "SELECT d.id, d.crm_log_id, d.thread_key, d.kind, d.local_date, d.zone, d.part, d.is_full,"
    " (SELECT count(*) FROM messages m WHERE m.digest_id = d.id) FROM digests d"
    " WHERE d.scope = $1 AND d.crm_log_id = $2 ORDER BY d.id DESC LIMIT 1"
)
# A day's later parts (see RecordCap) are digests of their own, keyed by the thread and the part.
_PART = "#part"
_NEW_MESSAGE = (
    "INSERT INTO messages (scope, message_id, digest_id, created_ms, state, owner, entry, recorded_ms)"
    " VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) ON CONFLICT (scope, message_id) DO NOTHING"
)
_FIND_MESSAGE = (
    "SELECT m.digest_id, m.state, m.logged_via, m.owner, d.crm_log_id, d.local_date FROM messages m"
    " JOIN digests d ON d.id = m.digest_id WHERE m.scope = $1 AND m.message_id = $2"
)
_TAKE_LEASE = (
    "UPDATE digests SET lease_owner = $2, lease_expires_ms = $4"
    " WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_ms < $3)"
    " RETURNING crm_log_id, ref, create_sent_ms, settle_until_ms, written_fingerprint, sent_fingerprints,"
    " kept_body, crm_version, kind, local_date, zone, part, continues_log_id"
)
_RELEASE_LEASE = (
    "UPDATE digests SET lease_owner = NULL, lease_expires_ms = NULL WHERE id = $1 AND lease_owner = $2"
)
# The same columns as _TAKE_LEASE returns.
_LOAD_DIGEST = (
    "SELECT crm_log_id, ref, create_sent_ms, settle_until_ms, written_fingerprint, sent_fingerprints,"
    " kept_body, crm_version, kind, local_date, zone, part, continues_log_id FROM digests WHERE id = $1"
)
_LOAD_ENTRIES = (
    "SELECT message_id, state, entry, in_kept FROM messages WHERE digest_id = $1"
    " ORDER BY created_ms, message_id"
)
_CREATE_SENT = "UPDATE digests SET create_sent_ms = $2 WHERE id = $1 AND create_sent_ms IS NULL"
_UNSETTLED = "UPDATE digests SET settle_until_ms = $2 WHERE id = $1"
_WRITE_SENT = "UPDATE digests SET sent_fingerprints = $2 WHERE id = $1"
# Every SET reads the row as it was, so the lease is compared before it is cleared.
_RECORD_DIGEST = (
    "UPDATE digests SET crm_log_id = $2, create_sent_ms = NULL, settle_until_ms = NULL, is_full = $7,"
    " written_fingerprint = $3, sent_fingerprints = NULL, crm_version = $6, updated_ms = $4,"
    " lease_owner = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_owner END,"
    " lease_expires_ms = CASE WHEN lease_owner = $5 THEN NULL ELSE lease_expires_ms END"
    " WHERE id = $1"
)
_RECORD_MESSAGE = (
    "UPDATE messages SET state = 'logged', logged_via = $3"
    " WHERE digest_id = $1 AND message_id = $2 AND state = 'pending'"
)
# record_written in one statement, on PostgreSQL only (SQLite has no UPDATE inside WITH): one
# round trip instead of four (BEGIN, the digest, its messages, COMMIT). The two updates of
# messages touch different rows: a pending message is never in a kept edit.
_RECORD_WRITTEN_POSTGRES = (
    "WITH logged AS ("
    " UPDATE messages SET state = 'logged', logged_via = $3"
    " WHERE digest_id = $1 AND message_id = ANY($7::varchar[]) AND state = 'pending'"
    "), unkept AS ("
    " UPDATE messages SET in_kept = false WHERE digest_id = $1 AND $3 = 'create' AND in_kept"
    ") UPDATE digests SET crm_log_id = $2, create_sent_ms = NULL, settle_until_ms = NULL, is_full = $9,"
    " written_fingerprint = $4, sent_fingerprints = NULL, crm_version = $8, updated_ms = $5,"
    " kept_body = CASE WHEN $3 = 'create' THEN NULL ELSE kept_body END,"
    " lease_owner = CASE WHEN lease_owner = $6 THEN NULL ELSE lease_owner END,"
    " lease_expires_ms = CASE WHEN lease_owner = $6 THEN NULL ELSE lease_expires_ms END"
    " WHERE id = $1"
)
_SET_KEPT_BODY = "UPDATE digests SET kept_body = $2 WHERE id = $1"
_FORGET_KEPT = "UPDATE messages SET in_kept = $2 WHERE digest_id = $1"
_MARK_KEPT = "UPDATE messages SET in_kept = $2 WHERE digest_id = $1 AND state = 'logged'"
_WITHDRAW = "DELETE FROM messages WHERE scope = $1 AND message_id = $2 AND owner = $3 AND state = 'pending'"
# By the last write, whatever the messages' dates: a backfill of old history is remembered as
# long as one of today's messages.
_EXPIRED_DIGESTS = (
    "SELECT d.id FROM digests d WHERE d.updated_ms < $1"
    " AND (d.lease_owner IS NULL OR d.lease_expires_ms < $2)"
    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.digest_id = d.id AND m.state = 'pending')"
    " LIMIT $3"
)
_DELETE_MESSAGES = "DELETE FROM messages WHERE digest_id = $1"
_DELETE_OLD_ATTEMPTS = "DELETE FROM attempts WHERE last_failure_ms < $1"
_RECORD_FAILURE = (
    "INSERT INTO attempts (scope, message_id, crm, account_host, crm_user_id, contact_id, thread_key,"
    " local_date, kind, failures, last_status, last_reason, last_crm_http_status, last_failure_ms)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $13)"
    " ON CONFLICT (scope, message_id) DO UPDATE SET failures = attempts.failures + 1,"
    " last_status = excluded.last_status, last_reason = excluded.last_reason,"
    " last_crm_http_status = excluded.last_crm_http_status, last_failure_ms = excluded.last_failure_ms"
)
# Every message of one account ($1, $2) that a call handed over: those filed in a digest (with
# their failed attempts, if any), then those whose every call failed and withdrew them. Each part
# is filtered, ordered and limited on its own, so it walks the account's days by index and stops
# at a page (see _message_logs_sql); {logged} and {failed} are their filters.
_LOGGED_LOGS = (
    "SELECT d.local_date, m.scope, m.message_id, m.state, d.crm_log_id, d.kind, d.crm_user_id,"
    " d.contact_id, d.thread_key, a.failures, a.last_status, a.last_reason, a.last_crm_http_status,"
    " a.last_failure_ms FROM messages m JOIN digests d ON d.id = m.digest_id"
    " LEFT JOIN attempts a ON a.scope = m.scope AND a.message_id = m.message_id"
    " WHERE d.crm = $1 AND d.account_host = $2{logged}"
    " ORDER BY d.local_date, m.scope, m.message_id LIMIT {limit}"
)
_FAILED_LOGS = (
    "SELECT a.local_date, a.scope, a.message_id, 'failed', NULL, a.kind, a.crm_user_id, a.contact_id,"
    " a.thread_key, a.failures, a.last_status, a.last_reason, a.last_crm_http_status, a.last_failure_ms"
    " FROM attempts a WHERE a.crm = $1 AND a.account_host = $2{failed}"
    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.scope = a.scope AND m.message_id = a.message_id)"
    " ORDER BY a.local_date, a.scope, a.message_id LIMIT {limit}"
)
_MESSAGE_LOGS = (
    "SELECT * FROM (SELECT * FROM ({logged_logs}) AS logged"
    " UNION ALL SELECT * FROM ({failed_logs}) AS failed) AS t"
    " ORDER BY 1, 2, 3 LIMIT {limit}"
)
# MessageLogFilter's fields: the column each matches, in digests (d), messages (m) and attempts (a).
_FILTERS = (
    ("user_id", "d.crm_user_id", "a.crm_user_id", "="),
    ("contact_id", "d.contact_id", "a.contact_id", "="),
    ("message_id", "m.message_id", "a.message_id", "="),
    ("thread_key", "d.thread_key", "a.thread_key", "="),
    ("start_date", "d.local_date", "a.local_date", ">="),
    ("end_date", "d.local_date", "a.local_date", "<="),
)
_DELETE_DIGEST = "DELETE FROM digests WHERE id = $1"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _guard(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Reports a lost or refused database as StoreUnavailable, without the SQL or its parameters."""

    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, Store)
        try:
            return await fn(*args, **kwargs)
        except _CONSTRAINT_VIOLATIONS:
            raise
        except store.unavailable as exc:
            raise StoreUnavailable("the message store is unavailable; retry later") from exc

    return metrics.timed_store_operation(wrapper)


_CONSTRAINT_VIOLATIONS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
# Migrations run through SQLAlchemy, which wraps the drivers' errors in its own.
_CANNOT_CONNECT: tuple[type[BaseException], ...] = (
    DBAPIError,
    *SqliteDatabase.unavailable,
    *PostgresDatabase.unavailable,
)


async def open_store(database_url: str, environ: Mapping[str, str] | None = None) -> Store:
    """Connects and brings the schema up to date; raises StoreUnavailable when the database can't
    be used, SettingsError when the URL is of neither kind or no key seals message text (keys come
    from `environ`, see service.store.sealing)."""
    try:
        database = await connect(database_url)
    except _CANNOT_CONNECT as exc:
        raise StoreUnavailable("the message store is unavailable") from exc
    try:
        sealer = sealer_for(environ or {}, database_url)
    except SettingsError:
        await database.close()
        raise
    return Store(database, sealer)


def _entry_place(digest_id: int, message_id: str) -> str:
    """Where a sealed entry belongs (service.store.sealing): it opens nowhere else."""
    return f"messages.entry/{digest_id}/{message_id}"


def _kept_body_place(digest_id: int) -> str:
    return f"digests.kept_body/{digest_id}"


class Store:
    def __init__(self, database: Database, sealer: Sealer) -> None:
        self._database = database
        self._sealer = sealer
        self.unavailable = database.unavailable

    @property
    def dialect(self) -> str:
        return self._database.dialect

    async def close(self) -> None:
        await self._database.close()

    @_guard
    async def ping(self) -> None:
        await self._database.ping()

    @_guard
    async def claim(self, request: LogRequest, owner: str, cap: RecordCap = RECORD_CAP) -> ClaimedMessage:
        """Files the message under its thread's digest for the day (the day's first part that is
        not full), creating the digest row if needed."""

        async def work(tx: Transaction) -> ClaimedMessage:
            return await _claim(tx, request, owner, cap, self._sealer)

        return await self._database.transaction(work)

    @_guard
    async def claim_and_lease(
        self, request: LogRequest, owner: str, ttl_ms: int, cap: RecordCap = RECORD_CAP
    ) -> tuple[ClaimedMessage, Leased | None]:
        """claim, then lease_and_load in the same transaction when the message waits for a write:
        the path of a call that finds nobody writing its digest, in one transaction instead of two."""

        async def work(tx: Transaction) -> tuple[ClaimedMessage, Leased | None]:
            claimed = await _claim(tx, request, owner, cap, self._sealer)
            if claimed.state is MessageState.LOGGED:
                return claimed, None
            digest = await _try_lease(tx, claimed.digest_id, owner, ttl_ms)
            if digest is None:
                return claimed, None
            # The claim read the message in this same transaction: it is as the lease finds it.
            return claimed, Leased(claimed, await _load(tx, claimed.digest_id, self._sealer, digest))

        return await self._database.transaction(work)

    @_guard
    async def claim_in_log(
        self, request: LogRequest, owner: str, cap: RecordCap = RECORD_CAP
    ) -> ClaimedMessage:
        """Files the message under the digest whose CRM record is request.log_id, or, once that
        record is full, under the part that continues its day."""

        async def work(tx: Transaction) -> ClaimedMessage:
            digest = await tx.fetch_one(_FIND_LOGGED_DIGEST, request.scope, request.log_id)
            if digest is None:
                raise LogNotFound(
                    f"no {request.crm} record {request.log_id!r} was logged by this service"
                    " for this user and contact"
                )
            digest_id, crm_log_id, thread_key, kind, local_date, zone_label, part, full, count = digest
            _check_fits(request, thread_key, Kind(kind), date.fromisoformat(local_date), zone_label)
            if full or count >= cap.messages:
                # The record is full: the message goes to the part that continues its day.
                return await _claim_in_part(
                    tx,
                    _Filing(request, owner, cap, self._sealer),
                    thread_key.removesuffix(f"{_PART}{part}"),
                    local_date,
                    part + 1,
                    crm_log_id,
                    zone_label or request.user.zone_label,
                )
            return await _file_message(tx, request, digest_id, crm_log_id, owner, self._sealer)

        return await self._database.transaction(work)

    @_guard
    async def try_lease(self, digest_id: int, owner: str, ttl_ms: int) -> bool:
        async def work(tx: Transaction) -> bool:
            return await _try_lease(tx, digest_id, owner, ttl_ms) is not None

        return await self._database.transaction(work)

    @_guard
    async def lease_and_load(
        self, digest_id: int, owner: str, ttl_ms: int, scope: str, message_id: str
    ) -> Leased | None:
        """Takes the digest's lease and, in the same transaction, reads what the holder needs;
        None when someone else holds the lease."""

        async def work(tx: Transaction) -> Leased | None:
            return await _lease_and_load(tx, digest_id, owner, ttl_ms, scope, message_id, self._sealer)

        return await self._database.transaction(work)

    @_guard
    async def release_lease(self, digest_id: int, owner: str) -> None:
        await self._database.execute(_RELEASE_LEASE, digest_id, owner)

    @_guard
    async def load(self, digest_id: int) -> StoredDigest:
        async def work(tx: Transaction) -> StoredDigest:
            return await _load(tx, digest_id, self._sealer)

        return await self._database.transaction(work)

    @_guard
    async def create_sent(self, digest_id: int) -> None:
        """Notes, before it is sent, that a create for this digest may reach the CRM."""

        await self._database.execute(_CREATE_SENT, digest_id, _now_ms())

    @_guard
    async def unsettled_until(self, digest_id: int, until_ms: int) -> None:
        """Holds back writes to this digest until until_ms: an unanswered write may land until then."""

        await self._database.execute(_UNSETTLED, digest_id, until_ms)

    @_guard
    async def record_written(
        self,
        digest_id: int,
        crm_log_id: str,
        message_ids: Sequence[str],
        via: str,
        fingerprint: str,
        version: str | None,
        owner: str,
        full: bool = False,
    ) -> None:
        """The CRM now holds these messages in record crm_log_id, whose text has this fingerprint
        and which is at this version (None where the CRM keeps none); owner's lease on the digest
        ends, and so does any hold after an unanswered write (a write lands only once it has
        settled or was seen landed). A full record takes no more messages (see RecordCap)."""
        now = _now_ms()
        if self.dialect == "postgresql":
            await self._database.execute(
                _RECORD_WRITTEN_POSTGRES,
                digest_id,
                crm_log_id,
                via,
                fingerprint,
                now,
                owner,
                list(message_ids),
                version,
                full,
            )
            return

        async def work(tx: Transaction) -> None:
            await tx.execute(_RECORD_DIGEST, digest_id, crm_log_id, fingerprint, now, owner, version, full)
            if via == "create":
                # A new record holds every message whole: nothing of a former record's edit is kept.
                await tx.execute(_SET_KEPT_BODY, digest_id, None)
                await tx.execute(_FORGET_KEPT, digest_id, False)
            await tx.execute_many(_RECORD_MESSAGE, [(digest_id, logged, via) for logged in message_ids])

        await self._database.transaction(work)

    @_guard
    async def write_sent(self, digest_id: int, fingerprint: str, sent_before: Sequence[str]) -> None:
        """Notes, before it is sent, the text of a write that may reach the CRM."""
        recent = " ".join([*sent_before[-(_SENT_FINGERPRINTS_KEPT - 1) :], fingerprint])

        await self._database.execute(_WRITE_SENT, digest_id, recent)

    @_guard
    async def keep_edit(self, digest_id: int, body: str) -> None:
        """A person edited the record: keep their text, which holds every message logged so far."""

        async def work(tx: Transaction) -> None:
            await tx.execute(_SET_KEPT_BODY, digest_id, self._sealer.seal(body, _kept_body_place(digest_id)))
            await tx.execute(_MARK_KEPT, digest_id, True)

        await self._database.transaction(work)

    @_guard
    async def withdraw(self, scope: str, message_id: str, owner: str) -> None:
        """Takes back a message this call handed over and no CRM write holds, so a retry starts clean."""

        await self._database.execute(_WITHDRAW, scope, message_id, owner)

    @_guard
    async def record_failure(self, request: LogRequest, failed: FailedCall) -> None:
        """Counts a failed call that handed request's message over, and keeps how it failed."""
        await self._database.execute(
            _RECORD_FAILURE,
            request.scope,
            request.entry.message_id,
            request.crm,
            request.account[:253],
            request.user.id,
            request.contact.id,
            request.thread_key,
            request.local_date.isoformat(),
            request.kind.value,
            failed.status[:32],
            failed.reason[:64],
            failed.crm_http_status,
            failed.at_ms,
        )

    @_guard
    async def message_logs(
        self, which: MessageLogFilter, *, after: tuple[str, str, str] | None = None, limit: int
    ) -> list[MessageLog]:
        """Up to `limit` of the messages `which` selects, in MessageLog.key order, from after `after`."""
        sql, args = _message_logs_sql(which, after, limit)

        async def work(tx: Transaction) -> list[Row]:
            return await tx.fetch_all(sql, *args)

        return [_message_log(row) for row in await self._database.transaction(work)]

    @_guard
    async def purge(self, written_before_ms: int, batch: int = 1000) -> int:
        """Deletes up to `batch` digests last written before `written_before_ms` (epoch ms) whose
        every message is logged and that nobody is writing, with their messages; returns how many
        digests went."""
        now = _now_ms()

        async def work(tx: Transaction) -> int:
            ids = [(row[0],) for row in await tx.fetch_all(_EXPIRED_DIGESTS, written_before_ms, now, batch)]
            await tx.execute_many(_DELETE_MESSAGES, ids)
            await tx.execute_many(_DELETE_DIGEST, ids)
            # Failed attempts go by the same rule: none since the window began.
            await tx.execute(_DELETE_OLD_ATTEMPTS, written_before_ms)
            return len(ids)

        return await self._database.transaction(work)


def _message_logs_sql(
    which: MessageLogFilter, after: tuple[str, str, str] | None, limit: int
) -> tuple[str, list[object]]:
    """_MESSAGE_LOGS with only the filters `which` sets (an empty one matches everything), each a
    plain comparison an index can serve, and its arguments."""
    args: list[object] = [which.crm, which.account[:253]]
    logged: list[str] = []
    failed: list[str] = []
    for name, digest_column, attempt_column, operator in _FILTERS:
        value = getattr(which, name)
        if value:
            args.append(value)
            logged.append(f" AND {digest_column} {operator} ${len(args)}")
            failed.append(f" AND {attempt_column} {operator} ${len(args)}")
    if after is not None:
        args.extend(after)
        key = f"(${len(args) - 2}, ${len(args) - 1}, ${len(args)})"
        logged.append(f" AND (d.local_date, m.scope, m.message_id) > {key}")
        failed.append(f" AND (a.local_date, a.scope, a.message_id) > {key}")
    args.append(limit)
    limit_at = f"${len(args)}"
    sql = _MESSAGE_LOGS.format(
        logged_logs=_LOGGED_LOGS.format(logged="".join(logged), limit=limit_at),
        failed_logs=_FAILED_LOGS.format(failed="".join(failed), limit=limit_at),
        limit=limit_at,
    )
    return sql, args


def _message_log(row: Row) -> MessageLog:
    (
        local_date,
        scope,
        message_id,
        state,
        crm_log_id,
        kind,
        user_id,
        contact_id,
        thread_key,
        failures,
        status,
        reason,
        http_status,
        failed_ms,
    ) = row
    last = None if failures is None else FailedCall(status, reason, http_status, failed_ms)
    return MessageLog(
        local_date=local_date,
        scope=scope,
        message_id=message_id,
        state=LogState(state),
        crm_log_id=crm_log_id,
        kind=kind,
        crm_user_id=user_id,
        contact_id=contact_id,
        thread_key=thread_key,
        failures=failures or 0,
        last_failure=last,
    )


async def _claim(
    tx: Transaction, request: LogRequest, owner: str, cap: RecordCap, sealer: Sealer
) -> ClaimedMessage:
    filing = _Filing(request, owner, cap, sealer)
    day = request.local_date.isoformat()
    return await _claim_in_part(tx, filing, request.thread_key, day, 1, None, request.user.zone_label)


@dataclass(frozen=True)
class _Filing:
    """One claim's message and its filer, the cap on a record, and the sealer of its entry."""

    request: LogRequest
    owner: str
    cap: RecordCap
    sealer: Sealer


async def _claim_in_part(
    tx: Transaction,
    filing: _Filing,
    thread_key: str,
    local_date: str,
    part: int,
    continues_log_id: str | None,
    zone_label: str,
) -> ClaimedMessage:
    """Files the message in the first part of its thread's day, from `part` on, that is not
    full, creating that part's digest row if needed. A message already filed stays where it is."""
    request, owner, sealer = filing.request, filing.owner, filing.sealer
    scope = request.scope
    while True:
        key = thread_key if part == 1 else f"{thread_key}{_PART}{part}"
        # Look first: every message but a part's first finds its digest, with one statement.
        digest = await tx.fetch_one(_FIND_DIGEST, scope, key, local_date)
        if digest is None:
            created = await tx.fetch_one(
                _NEW_DIGEST,
                scope,
                key,
                local_date,
                request.kind.value,
                request.crm,
                request.account[:253],
                request.user.id,
                request.contact.id,
                secrets.token_hex(6),
                _now_ms(),
                zone_label,
                part,
                continues_log_id,
            )
            if created is not None:
                return await _file_message(tx, request, created[0], None, owner, sealer)
            digest = await tx.fetch_one(_FIND_DIGEST, scope, key, local_date)
            assert digest is not None  # another transaction made it first, and committed
        digest_id, crm_log_id, full, count = digest
        if not (full or count >= filing.cap.messages):
            return await _file_message(tx, request, digest_id, crm_log_id, owner, sealer)
        # As much as a record may hold: the day goes on in the next part, which names this one.
        part, continues_log_id = part + 1, crm_log_id


def _check_fits(request: LogRequest, thread_key: str, kind: Kind, day: date, zone_label: str | None) -> None:
    """Refuses a message that the record UpdateMessageLog names cannot hold as what it is: a
    record keeps its kind (a voicemail or fax record holds its own message only, a conversation
    digest holds SMS) and its day (in the zone it is rendered in)."""
    if kind is not request.kind:
        raise RecordKindMismatch(
            f"record {request.log_id!r} holds {_KIND_NAMES[kind]}, not {_KIND_NAMES[request.kind]};"
            " log this message with AddMessageLog"
        )
    if thread_key != request.thread_key and kind is not Kind.SMS:
        raise RecordKindMismatch(
            f"record {request.log_id!r} holds one {kind.value} already; log this one with AddMessageLog"
        )
    zone = request.user.zone if zone_label is None else zone_from_label(zone_label)
    message_day = request.entry.created_at.astimezone(zone).date()
    if message_day != day:
        raise RecordDayMismatch(
            f"record {request.log_id!r} holds the messages of {day.isoformat()}; this message is of"
            f" {message_day.isoformat()} ({zone_label or request.user.zone_label}): log it with AddMessageLog"
        )


_KIND_NAMES = {Kind.SMS: "an SMS conversation", Kind.VOICEMAIL: "a voicemail", Kind.FAX: "a fax"}


async def _file_message(
    tx: Transaction, request: LogRequest, digest_id: int, crm_log_id: str | None, owner: str, sealer: Sealer
) -> ClaimedMessage:
    entry = request.entry
    filed = await tx.execute(
        _NEW_MESSAGE,
        request.scope,
        entry.message_id,
        digest_id,
        entry.created_ms,
        owner,
        sealer.seal(entry.to_json(), _entry_place(digest_id, entry.message_id)),
        _now_ms(),
    )
    if filed == 1:
        # New, so pending and this call's, in the digest read in this transaction.
        return ClaimedMessage(digest_id, crm_log_id, MessageState.PENDING, None, owned=True)
    claimed = await _message(tx, request.scope, entry.message_id, owner)
    assert claimed is not None  # inserted or already there, in this transaction
    return claimed


async def _message(tx: Transaction, scope: str, message_id: str, owner: str) -> ClaimedMessage | None:
    row = await tx.fetch_one(_FIND_MESSAGE, scope, message_id)
    if row is None:
        return None
    digest_id, state, logged_via, filed_by, crm_log_id, local_date = row
    return ClaimedMessage(
        digest_id, crm_log_id, MessageState(state), logged_via, owned=filed_by == owner, local_date=local_date
    )


async def _try_lease(tx: Transaction, digest_id: int, owner: str, ttl_ms: int) -> Row | None:
    """Takes or renews the lease; returns the digest's row (as _LOAD_DIGEST reads it), or None when another
    call holds the lease."""
    now = _now_ms()
    return await tx.fetch_one(_TAKE_LEASE, digest_id, owner, now, now + ttl_ms)


async def _lease_and_load(
    tx: Transaction, digest_id: int, owner: str, ttl_ms: int, scope: str, message_id: str, sealer: Sealer
) -> Leased | None:
    digest = await _try_lease(tx, digest_id, owner, ttl_ms)
    if digest is None:
        return None
    message = await _message(tx, scope, message_id, owner)
    if message is None or message.state is not MessageState.PENDING:
        return Leased(message, None)
    return Leased(message, await _load(tx, digest_id, sealer, digest))


async def _load(tx: Transaction, digest_id: int, sealer: Sealer, digest: Row | None = None) -> StoredDigest:
    """The digest with its entries; `digest` is its row (as _LOAD_DIGEST reads it) when already read."""
    if digest is None:
        digest = await tx.fetch_one(_LOAD_DIGEST, digest_id)
        assert digest is not None  # digests are deleted only with every message, and never leased
    (
        crm_log_id,
        ref,
        create_sent_ms,
        settle_until_ms,
        written,
        sent,
        kept_body,
        crm_version,
        kind,
        day,
        zone,
        part,
        continues_log_id,
    ) = digest
    rows: list[Row] = await tx.fetch_all(_LOAD_ENTRIES, digest_id)
    return StoredDigest(
        id=digest_id,
        crm_log_id=crm_log_id,
        ref=ref,
        create_sent_ms=create_sent_ms,
        settle_until_ms=settle_until_ms,
        written_fingerprint=written,
        sent_fingerprints=tuple((sent or "").split()),
        kept_body=None if kept_body is None else sealer.open(kept_body, _kept_body_place(digest_id)),
        kept_ids=frozenset(row[0] for row in rows if row[3]),
        crm_version=crm_version,
        kind=Kind(kind),
        local_date=date.fromisoformat(day),
        zone_label=zone,
        part=part,
        continues_log_id=continues_log_id,
        entries=[Entry.from_json(sealer.open(row[2], _entry_place(digest_id, row[0]))) for row in rows],
        pending_ids=[row[0] for row in rows if row[1] == MessageState.PENDING],
    )
