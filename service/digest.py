"""Decides, for one message, whether to create a CRM record, append to one, or do nothing.

The protocol, per message:
1. claim: in one transaction, find or create the digest row for the message's thread and local
   day, and file the message as "pending" (or find it already there). Already logged: done, no
   CRM call.
2. lease: take the digest's lease (an in-process lock first, then a lease row-update that other
   processes respect), waiting no longer than the caller's deadline. When no call of this process
   holds the digest's lock, the lease is taken in the claim's own transaction.
3. write: under the lease, render the whole record from every stored entry of the digest in
   creation-time order, then create it (no CRM id yet) or replace its content (update). Pending
   messages of concurrent calls ride along in the same write; their calls then find them logged.
4. record: mark the written messages logged. If the write failed, the call withdraws its own
   message, so nothing is marked logged that the CRM does not hold.

Once a CRM write has been sent, it and the recording of its result run to completion even if the
caller goes away, so a cancelled call never leaves a written record unrecorded.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

import structlog

from service.adapters.base import CrmCall, CurrentRecord, HttpCrmAdapter
from service.errors import (
    CrmError,
    CrmRecordChanged,
    CrmRecordNotFound,
    DigestBusy,
    WriteUnsettled,
)
from service.limits import CrmCapacity, current_account
from service.model import LogRequest, Outcome, zone_from_label
from service.render import DigestView, RenderedRecord, fingerprint, ref_marker, render
from service.store import RECORD_CAP, ClaimedMessage, Leased, MessageState, RecordCap, Store, StoredDigest

log = structlog.get_logger("messagelog.digest")

T = TypeVar("T")

_POLL_FIRST_SECONDS = 0.02
_POLL_MAX_SECONDS = 0.25


@dataclass(frozen=True)
class LogResult:
    log_id: str
    outcome: Outcome
    # ALREADY_LOGGED: the day of the record holding the message, which a message sent again with
    # another time or time zone does not give.
    local_date: str | None = None


class DigestLogger:
    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float,
        create_settle_seconds: float,
        crm_capacity: CrmCapacity,
        record_cap: RecordCap = RECORD_CAP,
    ) -> None:
        self._store = store
        self._crm_capacity = crm_capacity
        self._turns = DigestTurns(store, lease_ms=int(lease_seconds * 1000), record_cap=record_cap)
        self._settle_seconds = create_settle_seconds
        self._record_cap = record_cap

    async def log(self, request: LogRequest, adapter: HttpCrmAdapter, *, deadline: float) -> LogResult:
        """Logs request's message; deadline is a time.monotonic() value."""
        call = _crm_call(request, deadline)
        adapter.validate(call)
        # Whose account this is, as the CRM says, before anything is filed or read: a credential
        # the CRM refuses raises here, having filed, held and learned nothing.
        account = await adapter.verify_account(call)
        request = replace(request, account=account.key, account_user_id=account.user_id or "")
        if not request.user.name and account.user_name:
            request = replace(request, user=replace(request.user, name=account.user_name))
        # Every CRM request of this call, and of the write it may leave running, waits for a slot
        # of the account's budget (service.limits); the call itself is never refused for it.
        capacity = current_account.set(self._crm_capacity.of(request.crm, request.account))
        try:
            # 1-2. File the message, then wait for the digest (this process's lock, then the lease).
            async with self._turns.take(request, deadline) as turn:
                if turn.message.state is MessageState.LOGGED:
                    return _finished(turn.message)
                # 3-4. Write the record and record the write, to the end even if the caller goes away.
                return await turn.run(lambda: self._write(request, adapter, turn, deadline))
        finally:
            current_account.reset(capacity)

    async def drain(self) -> None:
        """Waits for writes whose callers went away, so a graceful stop records every CRM write."""
        await self._turns.drain()

    async def _write(
        self, request: LogRequest, adapter: HttpCrmAdapter, turn: DigestTurn, deadline: float
    ) -> LogResult:
        digest = turn.digest
        call = _crm_call(request, deadline)
        seen = await self._unsettled(adapter, call, digest)
        if seen.held > 0:
            raise WriteUnsettled(
                "the CRM may still apply an earlier write to this record; retry shortly",
                retry_after=seen.held,
            )
        if digest.crm_log_id is None:
            user_name, _ = await asyncio.gather(adapter.user_display_name(call), adapter.prepare_create(call))
        else:
            user_name = await adapter.user_display_name(call)
        written = await self._write_record(_Writing(request, adapter, call, user_name), digest, seen)
        await turn.record(written)
        if request.entry.message_id not in digest.pending_ids:
            raise RuntimeError("the message being logged was not pending in its digest")
        if not turn.message.owned:
            # An earlier call handed this message over and reports the write, so that exactly
            # one call per message says CREATED or APPENDED.
            return LogResult(written.log_id, Outcome.ALREADY_LOGGED, turn.message.local_date)
        return LogResult(written.log_id, Outcome.CREATED if written.via == "create" else Outcome.APPENDED)

    async def _unsettled(self, adapter: HttpCrmAdapter, call: CrmCall, digest: StoredDigest) -> _Seen:
        """How long the digest is still held back after a write that went unanswered (see _sent):
        not at all once the CRM shows that write, which then cannot land again, or where a late
        landing could not undo a newer write. What the CRM showed serves the write that follows."""
        remaining = (digest.settle_until_ms or 0) / 1000 - time.time()
        if remaining <= 0:
            return _Seen()
        strategies = Strategies.of(adapter)
        if digest.crm_log_id is None:
            if strategies.lost_create is LostCreate.FIND and digest.create_sent_ms is not None:
                since = datetime.fromtimestamp(digest.create_sent_ms / 1000, UTC)
                found = await adapter.find_created(call, ref_marker(digest.ref), since)
                if found is not None:
                    return _Seen(found=found)
        elif strategies.append is Append.CONDITIONAL and digest.crm_version is not None:
            # Our next write expects the version the lost one expected too: whichever lands
            # second is refused (412), so the late one cannot undo ours.
            return _Seen()
        elif strategies.append is not Append.OVERWRITE and _lost_text_is_unique(digest):
            current = await adapter.read_record(call, digest.crm_log_id)
            if fingerprint(current.body) == digest.sent_fingerprints[-1]:
                return _Seen(current=current)
        return _Seen(held=remaining)

    async def _sent(self, digest: StoredDigest, write: Awaitable[T], text: str | None = None) -> T:
        """Awaits a CRM write. Unanswered, it may still be applied late, after a newer write, and
        undo that one: the digest is held back for the settle window (a read or a search that
        goes unanswered changes nothing, and holds nothing back).

        `text` is the fingerprint of an update's text. When the HTTP layer sent that update more
        than once (a 5xx answered one copy, which may have been applied), the record showing the
        text no longer proves that the unanswered copy landed: the text is noted as sent again,
        so it is not unique (_lost_text_is_unique) and the hold runs its full window.
        """
        try:
            return await write
        except CrmError as exc:
            if exc.in_flight:
                if text is not None and exc.attempts > 1:
                    await self._store.write_sent(digest.id, text, [*digest.sent_fingerprints, text])
                await self._store.unsettled_until(digest.id, int((time.time() + self._settle_seconds) * 1000))
            raise

    async def _write_record(self, writing: _Writing, digest: StoredDigest, seen: _Seen) -> _Written:
        """Writes the record to the CRM: creates it, or appends to it."""
        log_id = digest.crm_log_id
        if log_id is None:
            return await self._create(writing, digest, seen.found)
        try:
            return await self._append(writing, digest, log_id, seen.current)
        except CrmRecordNotFound:
            if writing.request.log_id:
                raise
            # Someone deleted the day's record in the CRM: start a new one holding the whole day.
            log.info("digest_record_gone", digest_id=digest.id, crm=writing.request.crm)
            return await self._create(writing, digest)

    async def _append(
        self, writing: _Writing, digest: StoredDigest, log_id: str, current: CurrentRecord | None = None
    ) -> _Written:
        """Replaces the record's content, by the adapter's append strategy (see Append): keeping a
        person's edit of it wherever the CRM lets us see the record. `current` is the record as
        just read, if it was."""
        adapter, crm = writing.adapter, writing.request.crm
        strategy = Strategies.of(adapter).append
        if strategy is Append.OVERWRITE:
            return await self._replace(writing, digest, log_id, None)
        if strategy is Append.CONDITIONAL and digest.crm_version is not None:
            try:
                return await self._replace(writing, digest, log_id, digest.crm_version)
            except CrmRecordChanged:
                log.info("record_changed", digest_id=digest.id, crm=crm)
                # Reloaded so the refused write counts among those sent: refused only when
                # repeated after a lost answer, it may have landed, and its text is ours, no edit.
                digest = await self._store.load(digest.id)
        if current is None:
            current = await adapter.read_record(writing.call, log_id)
        if _edited(digest, current.body):
            # A person edited the record: their text stays as they left it, ours goes after it.
            log.info("record_edit_kept", digest_id=digest.id, crm=crm)
            await self._store.keep_edit(digest.id, current.body)
            digest = await self._store.load(digest.id)
        version = current.version if strategy is Append.CONDITIONAL else None
        try:
            return await self._replace(writing, digest, log_id, version)
        except CrmRecordChanged:
            raise DigestBusy(
                "the CRM record changed again while it was being written; retry shortly"
            ) from None

    async def _replace(
        self, writing: _Writing, digest: StoredDigest, log_id: str, version: str | None
    ) -> _Written:
        """Writes the digest (after a kept edit) over the record; with a version, only while the
        record is still at it."""
        record = writing.render(digest, whole=False)
        sent = fingerprint(record.body)
        await self._store.write_sent(digest.id, sent, digest.sent_fingerprints)
        adapter, call = writing.adapter, writing.call
        if version is None:
            written = await self._sent(digest, adapter.update(call, log_id, record), sent)
        else:
            written = await self._sent(
                digest, adapter.update_unless_changed(call, log_id, record, version), sent
            )
        return _Written(log_id, "append", sent, written.version, self._fills(record))

    async def _create(self, writing: _Writing, digest: StoredDigest, found: str | None = None) -> _Written:
        """Creates the digest's record, unless an earlier create whose result was never recorded
        made it: then, where the adapter can find it (LostCreate.FIND), that record is found by
        its reference (or was just found: `found`) and brought up to date instead; elsewhere the
        record is created again, so the CRM may hold two (the documented limit). (That earlier
        create had time to land: it failed without reply, which held writes back until it
        settled or was found, or its process died, whose lease had to expire first.)"""
        record = writing.render(digest, whole=True)
        adapter, call = writing.adapter, writing.call
        if digest.create_sent_ms is not None and Strategies.of(adapter).lost_create is LostCreate.FIND:
            if found is None:
                since = datetime.fromtimestamp(digest.create_sent_ms / 1000, UTC)
                found = await adapter.find_created(call, ref_marker(digest.ref), since)
            log.info("create_reconciled", digest_id=digest.id, found=found is not None)
            if found is not None:
                sent = fingerprint(record.body)
                await self._store.write_sent(digest.id, sent, digest.sent_fingerprints)
                updated = await self._sent(digest, adapter.update(call, found, record), sent)
                return _Written(found, "create", sent, updated.version, self._fills(record))
        await self._store.create_sent(digest.id)
        created = await self._sent(digest, adapter.create(call, record))
        return _Written(
            created.log_id, "create", fingerprint(record.body), created.version, self._fills(record)
        )

    def _fills(self, record: RenderedRecord) -> bool:
        """Whether the record holds as much text as a record may: later messages of its day go to
        the next part (see RecordCap)."""
        return len(record.body.encode()) >= self._record_cap.body_bytes


class Append(StrEnum):
    """How an append replaces a record's content, by what the CRM's API can do."""

    # One write that expects the version (etag) our last write left: the CRM refuses it if anyone
    # changed the record since, and only then is the record read and a person's edit kept.
    CONDITIONAL = "conditional"
    # The record is read first, so a person's edit is found and kept before the write.
    READ_THEN_WRITE = "read_then_write"
    # The record is written over: a person's edit of it is lost. The documented limit of CRMs
    # whose API cannot return a record.
    OVERWRITE = "overwrite"


class LostCreate(StrEnum):
    """What the next writer does after a create whose reply never came (it may have landed)."""

    # The record it made is searched for by the digest's reference, and brought up to date.
    FIND = "find"
    # The record is created again: the CRM may then hold two (the documented limit of CRMs
    # whose API cannot search for it).
    CREATE_AGAIN = "create_again"


@dataclass(frozen=True)
class Strategies:
    """An adapter's append and lost-create strategies, chosen once per adapter class from its
    declarations (see service.adapters.base), never by probing it."""

    append: Append
    lost_create: LostCreate

    @staticmethod
    def of(adapter: HttpCrmAdapter) -> Strategies:
        return _strategies(type(adapter))


@functools.cache
def _strategies(adapter: type[HttpCrmAdapter]) -> Strategies:
    if adapter.versions is not None:
        append = Append.CONDITIONAL
    elif adapter.reads_records:
        append = Append.READ_THEN_WRITE
    else:
        append = Append.OVERWRITE
    return Strategies(append, LostCreate.FIND if adapter.finds_created else LostCreate.CREATE_AGAIN)


@dataclass(frozen=True)
class _Writing:
    """What stays the same through one write of a digest: the request, its CRM's adapter and call,
    and the user's name the record shows."""

    request: LogRequest
    adapter: HttpCrmAdapter
    call: CrmCall
    user_name: str

    def render(self, digest: StoredDigest, *, whole: bool) -> RenderedRecord:
        """The record as the CRM should hold it: every entry, or a person's kept edit and what
        followed."""
        request = self.request
        kept = None if whole else digest.kept_body
        entries = digest.entries
        if kept is not None:
            entries = [e for e in digest.entries if e.message_id not in digest.kept_ids]
        # One record, one zone: the zone of the digest's first call, whatever this call's is.
        if digest.zone_label is None:
            zone, zone_label = request.user.zone, request.user.zone_label
        else:
            zone, zone_label = zone_from_label(digest.zone_label), digest.zone_label
        first = digest.entries[0].created_at
        view = DigestView(
            kind=digest.kind,
            contact=request.contact,
            user_name=self.user_name,
            zone=zone,
            zone_label=zone_label,
            local_date=digest.local_date,
            entries=entries,
            ref=digest.ref,
            kept_body=kept,
            kept_count=len(digest.entries) - len(entries),
            part=digest.part,
            continues_log_id=digest.continues_log_id or "",
            first_time=first,
        )
        return render(view, self.adapter.body_format)


def _lost_text_is_unique(digest: StoredDigest) -> bool:
    """Whether the text of the unanswered write (the last one sent) differs from every other text
    the record may hold from us: only then does reading that text prove that this write landed.
    A write can repeat an earlier text (a process killed after its write landed, the next writer
    sending the same entries again), and the record showing the earlier one proves nothing."""
    if not digest.sent_fingerprints:
        return False
    *earlier, last = digest.sent_fingerprints
    return last != digest.written_fingerprint and last not in earlier


def _edited(digest: StoredDigest, body: str) -> bool:
    """Whether the record's text is a person's: neither what we last wrote nor a write we sent."""
    return digest.written_fingerprint is not None and fingerprint(body) not in (
        digest.written_fingerprint,
        *digest.sent_fingerprints,
    )


@dataclass(frozen=True)
class _Seen:
    """What checking a held digest found (see DigestLogger._unsettled): the seconds it is still
    held, or what the CRM showed that lets the write go ahead (the record a lost create made, the
    record as read), which the write then uses rather than asking again."""

    held: float = 0.0
    found: str | None = None
    current: CurrentRecord | None = None


@dataclass(frozen=True)
class _Written:
    """A write the CRM took: its record's id, "create" or "append", the fingerprint of the text
    written (computed once, for the write's bookkeeping before and after), the record's version
    after it (None where the CRM keeps none), and whether it filled the record."""

    log_id: str
    via: str
    fingerprint: str
    version: str | None
    full: bool


class DigestTurns:
    """Hands out turns at digests (DigestTurn): this process's lock per digest, the lease's
    length, and the tasks that finish writes whose callers went away."""

    def __init__(self, store: Store, *, lease_ms: int, record_cap: RecordCap) -> None:
        self.store = store
        self.lease_ms = lease_ms
        self.record_cap = record_cap
        # Keyed by a digest's thread and day (AddMessageLog) or its id (UpdateMessageLog).
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[Any]] = set()

    def take(self, request: LogRequest, deadline: float) -> DigestTurn:
        """The turn of the call logging request, to be entered with `async with`."""
        return DigestTurn(self, request, secrets.token_hex(16), deadline)

    def lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def in_background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Runs work to its end whatever happens to the call that started it; drain() waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self) -> None:
        # Until none is left: a turn whose caller went away may end in a task started meanwhile.
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


class DigestTurn:
    """One call's turn at its message's digest: everything the call holds, from filing the
    message to the end of the lease, and its undoing.

    Entering files the message and, unless it is already logged, waits (no longer than the
    caller's deadline) for this process's lock on the digest, then for the lease row that other
    processes respect. When no call of this process holds the lock, the message is filed and
    the lease taken in one transaction. Holding the lease, the turn knows the digest to write.
    The lease is renewed only if the turn outlasts a third of it (a slow CRM write).

    The turn ends, whatever happened to the caller meanwhile: the renewal stops; if the call
    failed, the message it filed is withdrawn, so nothing is left pending that no write holds
    and a retry starts clean; the lease is released (unless recording the write ended it); the
    lock is released. A write started with run() ends the turn itself, once it has finished.
    """

    def __init__(self, turns: DigestTurns, request: LogRequest, owner: str, deadline: float) -> None:
        self._turns = turns
        self._store = turns.store
        self._request = request
        self.owner = owner
        self._deadline = deadline
        self._message: ClaimedMessage | None = None
        self._digest: StoredDigest | None = None
        self._lock: asyncio.Lock | None = None
        self._leased_digest_id: int | None = None
        self._renewal: asyncio.TimerHandle | None = None
        self._renewer: asyncio.Task[None] | None = None
        # Whether the call may have filed its message (a claim was sent).
        self._filing = False
        self._ending: asyncio.Task[Any] | None = None

    @property
    def message(self) -> ClaimedMessage:
        """Where the call's message stands, as the turn last read it."""
        assert self._message is not None  # read on entering
        return self._message

    @property
    def digest(self) -> StoredDigest:
        """The digest to write, read under the lease; only while the message is pending."""
        assert self._digest is not None  # read with the lease, for a pending message
        return self._digest

    async def __aenter__(self) -> DigestTurn:
        try:
            await self._begin()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ending is None:
            # No write was started: the turn ends now, even if the caller is cancelled meanwhile.
            self._ending = self._turns.in_background(self._end(failed=exc_type is not None))
            await asyncio.shield(self._ending)
        # Otherwise the write's task ends the turn once the write is over (see run).

    async def run(self, write: Callable[[], Awaitable[LogResult]]) -> LogResult:
        """Runs write (the CRM write and its recording) in a task of its own that then ends the
        turn: once a write is sent, it and its recording finish even if the caller goes away."""

        async def write_then_end() -> LogResult:
            failed = True
            try:
                result = await write()
                failed = False
            finally:
                await self._end(failed)
            return result

        writing = self._turns.in_background(write_then_end())
        self._ending = writing
        return await asyncio.shield(writing)

    async def record(self, written: _Written) -> None:
        """Records the write the CRM took: its messages are logged, and the lease ends with it."""
        # The renewer must not take the lease back once the recording has ended it.
        await self._stop_renewing()
        digest = self.digest
        await self._store.record_written(
            digest.id,
            written.log_id,
            digest.pending_ids,
            written.via,
            written.fingerprint,
            written.version,
            self.owner,
            written.full,
        )
        self._leased_digest_id = None

    async def _begin(self) -> None:
        request, store = self._request, self._store
        lock = None
        if not request.log_id:
            lock = self._turns.lock(f"{request.scope}\x1f{request.thread_key}\x1f{request.local_date}")
        if lock is not None and not lock.locked():
            # Nobody in this process writes the digest: claim and lease it in one transaction.
            await self._hold(lock)
            self._filing = True
            self._message, leased = await store.claim_and_lease(
                request, self.owner, self._turns.lease_ms, self._turns.record_cap
            )
            if self._message.state is MessageState.LOGGED:
                return
            if leased is None:
                # Another process writes the digest: wait for its lease like any later call.
                leased = await self._lease()
            else:
                self._leased_digest_id = self._message.digest_id
        else:
            # Filed first, so that the call writing the digest now takes this message along.
            self._message = await self._claim()
            if self._message.state is MessageState.LOGGED:
                return
            await self._hold(lock or self._turns.lock(f"digest {self._message.digest_id}"))
            leased = await self._lease()
        self._renewal = asyncio.get_running_loop().call_later(
            self._turns.lease_ms / 3000, self._start_renewing
        )
        if leased.message is None:
            # The call that first handed this message over failed and withdrew it: file it again.
            self._message = await self._claim()
            if self._message.digest_id != self._leased_digest_id:
                # Its digest filled up meanwhile: it went to the next part, whose lease is not ours.
                raise DigestBusy("the conversation's record filled up meanwhile; retry shortly")
        else:
            self._message = leased.message
        if self._message.state is MessageState.PENDING:
            self._digest = leased.digest or await store.load(self._message.digest_id)

    async def _claim(self) -> ClaimedMessage:
        self._filing = True
        if self._request.log_id:
            return await self._store.claim_in_log(self._request, self.owner, self._turns.record_cap)
        return await self._store.claim(self._request, self.owner, self._turns.record_cap)

    async def _hold(self, lock: asyncio.Lock) -> None:
        """Waits for this process's earlier calls on the digest."""
        try:
            async with asyncio.timeout(max(0.0, self._deadline - time.monotonic())):
                await lock.acquire()
        except TimeoutError:
            raise DigestBusy("another call is writing this digest; retry shortly") from None
        self._lock = lock

    async def _lease(self) -> Leased:
        """Waits for other processes' lease; returns what the holder reads in the lease's own
        transaction."""
        digest_id, request = self.message.digest_id, self._request
        pause = _POLL_FIRST_SECONDS
        while True:
            leased = await self._store.lease_and_load(
                digest_id, self.owner, self._turns.lease_ms, request.scope, request.entry.message_id
            )
            if leased is not None:
                self._leased_digest_id = digest_id
                return leased
            if self._deadline - time.monotonic() <= pause:
                raise DigestBusy("another server is writing this digest; retry shortly")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)

    def _start_renewing(self) -> None:
        self._renewal = None
        digest_id = self._leased_digest_id
        if digest_id is not None:
            self._renewer = asyncio.create_task(self._renew(digest_id))

    async def _renew(self, digest_id: int) -> None:
        while True:
            await self._store.try_lease(digest_id, self.owner, self._turns.lease_ms)
            await asyncio.sleep(self._turns.lease_ms / 3000)

    async def _stop_renewing(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        if self._renewer is not None:
            self._renewer.cancel()
            # wait, not await: the renewer's cancellation is no error, the caller's own would be.
            await asyncio.wait([self._renewer])
            self._renewer = None

    async def _end(self, failed: bool) -> None:
        try:
            await self._stop_renewing()
            if failed and self._filing:
                await self._store.withdraw(self._request.scope, self._request.entry.message_id, self.owner)
            if self._leased_digest_id is not None:
                await self._store.release_lease(self._leased_digest_id, self.owner)
                self._leased_digest_id = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def _crm_call(request: LogRequest, deadline: float) -> CrmCall:
    return CrmCall(
        user=request.user,
        contact=request.contact,
        authorization=request.authorization,
        extras=request.additional_submission,
        deadline=deadline,
        account=request.account,
        account_user_id=request.account_user_id,
    )


def _finished(claimed: ClaimedMessage) -> LogResult:
    assert claimed.crm_log_id is not None  # a logged message is always in a written record
    if not claimed.owned:
        return LogResult(claimed.crm_log_id, Outcome.ALREADY_LOGGED, claimed.local_date)
    outcome = Outcome.CREATED if claimed.logged_via == "create" else Outcome.APPENDED
    return LogResult(claimed.crm_log_id, outcome)
