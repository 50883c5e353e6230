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
import secrets
import time
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from service.adapters.base import CrmCall, HttpCrmAdapter
from service.errors import (
    CrmError,
    CrmRecordChanged,
    CrmRecordNotFound,
    DigestBusy,
    WriteUnsettled,
)
from service.limits import CrmCapacity, current_account
from service.model import LogRequest, Outcome
from service.render import DigestView, RenderedRecord, fingerprint, ref_marker, render
from service.store import ClaimedMessage, Leased, MessageState, Store, StoredDigest

log = structlog.get_logger("messagelog.digest")

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
        self, store: Store, *, lease_seconds: float, create_settle_seconds: float, crm_capacity: CrmCapacity
    ) -> None:
        self._store = store
        self._crm_capacity = crm_capacity
        self._lease_ms = int(lease_seconds * 1000)
        self._settle_seconds = create_settle_seconds
        # Keyed by a digest's thread and day (AddMessageLog) or its id (UpdateMessageLog).
        self._local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[LogResult]] = set()

    async def log(self, request: LogRequest, adapter: HttpCrmAdapter, *, deadline: float) -> LogResult:
        """Logs request's message; deadline is a time.monotonic() value."""
        call = _crm_call(request, deadline)
        adapter.validate(call)
        # Whose account this is, as the CRM says, before anything is filed or read: a credential
        # the CRM refuses raises here, having filed, held and learned nothing.
        account = await adapter.verify_account(call)
        request = replace(request, account=account.key)
        if not request.user.name and account.user_name:
            request = replace(request, user=replace(request.user, name=account.user_name))
        # Every CRM request of this call, and of the write it may leave running, waits for a slot
        # of the account's budget (service.limits); the call itself is never refused for it.
        capacity = current_account.set(self._crm_capacity.of(request.crm, request.account))
        try:
            return await self._log(request, adapter, deadline)
        finally:
            current_account.reset(capacity)

    async def _log(self, request: LogRequest, adapter: HttpCrmAdapter, deadline: float) -> LogResult:
        owner = secrets.token_hex(16)
        if not request.log_id:
            lock = self._local_lock(f"{request.scope}\x1f{request.thread_key}\x1f{request.local_date}")
            if not lock.locked():
                # Nobody in this process writes the digest: claim and lease it in one transaction.
                await lock.acquire()
                return await self._log_holding_lock(request, adapter, lock, owner, deadline)
        claimed = await self._claim(request, owner)
        if claimed.state is MessageState.LOGGED:
            return _finished(claimed)
        if request.log_id:
            lock = self._local_lock(f"digest {claimed.digest_id}")
        try:
            leased = await self._take_turn(lock, request, claimed.digest_id, owner, deadline)
        except BaseException:
            await asyncio.shield(self._store.withdraw(request.scope, request.entry.message_id, owner))
            raise
        return await self._write_in_background(
            request, adapter, _Turn(claimed.digest_id, owner, lock), leased, deadline
        )

    async def _log_holding_lock(
        self, request: LogRequest, adapter: HttpCrmAdapter, lock: asyncio.Lock, owner: str, deadline: float
    ) -> LogResult:
        try:
            claimed, leased = await self._store.claim_and_lease(request, owner, self._lease_ms)
            if claimed.state is MessageState.LOGGED:
                lock.release()
                return _finished(claimed)
            if leased is None:
                try:
                    # Another process writes the digest: wait for its lease like any later call.
                    leased = await self._lease(request, claimed.digest_id, owner, deadline)
                except BaseException:
                    await asyncio.shield(self._store.withdraw(request.scope, request.entry.message_id, owner))
                    raise
        except BaseException:
            lock.release()
            raise
        return await self._write_in_background(
            request, adapter, _Turn(claimed.digest_id, owner, lock), leased, deadline
        )

    async def _write_in_background(
        self, request: LogRequest, adapter: HttpCrmAdapter, turn: _Turn, leased: Leased, deadline: float
    ) -> LogResult:
        # From here the lease is ours and only the task releases it, after the CRM write and its
        # recording are complete, even if the caller goes away meanwhile.
        task = asyncio.create_task(self._write_holding_lease(request, adapter, turn, leased, deadline))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Waits for writes whose callers went away, so a graceful stop records every CRM write."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _claim(self, request: LogRequest, owner: str) -> ClaimedMessage:
        if request.log_id:
            return await self._store.claim_in_log(request, owner)
        return await self._store.claim(request, owner)

    def _local_lock(self, key: str) -> asyncio.Lock:
        lock = self._local_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._local_locks[key] = lock
        return lock

    async def _take_turn(
        self, lock: asyncio.Lock, request: LogRequest, digest_id: int, owner: str, deadline: float
    ) -> Leased:
        """Waits for this process's earlier calls on the digest, then for other processes' lease;
        returns what the lease holder reads (in the lease's own transaction)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await lock.acquire()
        except TimeoutError:
            raise DigestBusy("another call is writing this digest; retry shortly") from None
        try:
            return await self._lease(request, digest_id, owner, deadline)
        except BaseException:
            lock.release()
            raise

    async def _lease(self, request: LogRequest, digest_id: int, owner: str, deadline: float) -> Leased:
        pause = _POLL_FIRST_SECONDS
        while True:
            leased = await self._store.lease_and_load(
                digest_id, owner, self._lease_ms, request.scope, request.entry.message_id
            )
            if leased is not None:
                return leased
            if deadline - time.monotonic() <= pause:
                raise DigestBusy("another server is writing this digest; retry shortly")
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)

    async def _write_holding_lease(
        self, request: LogRequest, adapter: HttpCrmAdapter, turn: _Turn, leased: Leased, deadline: float
    ) -> LogResult:
        # Most writes end well before a renewal is due; only a slow one starts the renewing task.
        turn.renewal = asyncio.get_running_loop().call_later(
            self._lease_ms / 3000, self._start_renewing, turn
        )
        try:
            current, digest = leased.message, leased.digest
            if current is None:
                # The call that first handed this message over failed and withdrew it: file it again.
                current = await self._claim(request, turn.owner)
            if current.state is MessageState.LOGGED:
                return _finished(current)
            if digest is None:
                digest = await self._store.load(current.digest_id)
            try:
                return await self._write(request, adapter, current, digest, turn, deadline)
            except BaseException:
                await self._store.withdraw(request.scope, request.entry.message_id, turn.owner)
                raise
        finally:
            await turn.stop_renewing()
            try:
                if not turn.released:
                    await self._store.release_lease(turn.digest_id, turn.owner)
            finally:
                turn.lock.release()

    async def _write(
        self,
        request: LogRequest,
        adapter: HttpCrmAdapter,
        message: ClaimedMessage,
        digest: StoredDigest,
        turn: _Turn,
        deadline: float,
    ) -> LogResult:
        call = _crm_call(request, deadline)
        unsettled = (digest.settle_until_ms or 0) / 1000 - time.time()
        if unsettled > 0:
            raise WriteUnsettled(
                "the CRM may still apply an earlier write to this record; retry shortly",
                retry_after=unsettled,
            )
        if digest.crm_log_id is None:
            user_name, _ = await asyncio.gather(adapter.user_display_name(call), adapter.prepare_create(call))
        else:
            user_name = await adapter.user_display_name(call)
        try:
            written = await self._write_record(_Writing(request, adapter, call, user_name), digest)
        except CrmError as exc:
            if exc.in_flight:
                # Unanswered: the CRM may apply it late, after a newer write, and undo that one.
                await self._store.unsettled_until(digest.id, int((time.time() + self._settle_seconds) * 1000))
            raise
        # The renewer must not take the lease back once the recording below has ended it.
        await turn.stop_renewing()
        await self._store.record_written(
            digest.id,
            written.log_id,
            digest.pending_ids,
            written.via,
            written.fingerprint,
            written.version,
            turn.owner,
        )
        turn.released = True
        if request.entry.message_id not in digest.pending_ids:
            raise RuntimeError("the message being logged was not pending in its digest")
        if not message.owned:
            # An earlier call handed this message over and reports the write, so that exactly
            # one call per message says CREATED or APPENDED.
            return LogResult(written.log_id, Outcome.ALREADY_LOGGED, message.local_date)
        return LogResult(written.log_id, Outcome.CREATED if written.via == "create" else Outcome.APPENDED)

    async def _write_record(self, writing: _Writing, digest: StoredDigest) -> _Written:
        """Writes the record to the CRM: creates it, or appends to it."""
        log_id = digest.crm_log_id
        if log_id is None:
            return await self._create(writing, digest)
        try:
            return await self._append(writing, digest, log_id)
        except CrmRecordNotFound:
            if writing.request.log_id:
                raise
            # Someone deleted the day's record in the CRM: start a new one holding the whole day.
            log.info("digest_record_gone", digest_id=digest.id, crm=writing.request.crm)
            return await self._create(writing, digest)

    async def _append(self, writing: _Writing, digest: StoredDigest, log_id: str) -> _Written:
        """Replaces the record's content, keeping a person's edit of it.

        Where the CRM writes conditionally and the version our last write left is known, that is
        one write, which the CRM refuses if anyone changed the record since. Otherwise, and after
        such a refusal, the record is read first (where the adapter can), so an edit is found
        before the write could overwrite it.
        """
        adapter, crm = writing.adapter, writing.request.crm
        if adapter.versions is not None and digest.crm_version is not None:
            try:
                return await self._replace(writing, digest, log_id, digest.crm_version)
            except CrmRecordChanged:
                log.info("record_changed", digest_id=digest.id, crm=crm)
                # Reloaded so the refused write counts among those sent: refused only when
                # repeated after a lost answer, it may have landed, and its text is ours, no edit.
                digest = await self._store.load(digest.id)
        current = await adapter.read_record(writing.call, log_id) if adapter.reads_records else None
        if current is not None and _edited(digest, current.body):
            # A person edited the record: their text stays as they left it, ours goes after it.
            log.info("record_edit_kept", digest_id=digest.id, crm=crm)
            await self._store.keep_edit(digest.id, current.body)
            digest = await self._store.load(digest.id)
        version = None if current is None else current.version
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
            written = await adapter.update(call, log_id, record)
        else:
            written = await adapter.update_unless_changed(call, log_id, record, version)
        return _Written(log_id, "append", sent, written.version)

    def _start_renewing(self, turn: _Turn) -> None:
        turn.renewal = None
        turn.renewer = asyncio.create_task(self._renew(turn.digest_id, turn.owner))

    async def _renew(self, digest_id: int, owner: str) -> None:
        while True:
            await self._store.try_lease(digest_id, owner, self._lease_ms)
            await asyncio.sleep(self._lease_ms / 3000)

    async def _create(self, writing: _Writing, digest: StoredDigest) -> _Written:
        """Creates the digest's record, unless an earlier create whose result was never recorded
        made it: then that record is found by its reference and brought up to date instead.
        (That earlier create had time to land: it failed without reply, which held writes back
        until it settled, or its process died, whose lease had to expire first.)"""
        record = writing.render(digest, whole=True)
        adapter, call = writing.adapter, writing.call
        if digest.create_sent_ms is not None and adapter.finds_created:
            since = datetime.fromtimestamp(digest.create_sent_ms / 1000, UTC)
            found = await adapter.find_created(call, ref_marker(digest.ref), since)
            log.info("create_reconciled", digest_id=digest.id, found=found is not None)
            if found is not None:
                sent = fingerprint(record.body)
                await self._store.write_sent(digest.id, sent, digest.sent_fingerprints)
                updated = await adapter.update(call, found, record)
                return _Written(found, "create", sent, updated.version)
        await self._store.create_sent(digest.id)
        created = await adapter.create(call, record)
        return _Written(created.log_id, "create", fingerprint(record.body), created.version)


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
        first = digest.entries[0].created_at
        view = DigestView(
            kind=request.kind,
            contact=request.contact,
            user_name=self.user_name,
            zone=request.user.zone,
            zone_label=request.user.zone_label,
            local_date=first.astimezone(request.user.zone).date() if request.log_id else request.local_date,
            entries=entries,
            ref=digest.ref,
            kept_body=kept,
            kept_count=len(digest.entries) - len(entries),
            first_time=first,
        )
        return render(view, self.adapter.body_format)


def _edited(digest: StoredDigest, body: str) -> bool:
    """Whether the record's text is a person's: neither what we last wrote nor a write we sent."""
    return digest.written_fingerprint is not None and fingerprint(body) not in (
        digest.written_fingerprint,
        *digest.sent_fingerprints,
    )


@dataclass(frozen=True)
class _Written:
    """A write the CRM took: its record's id, "create" or "append", the fingerprint of the text
    written (computed once, for the write's bookkeeping before and after), and the record's
    version after it (None where the CRM keeps none)."""

    log_id: str
    via: str
    fingerprint: str
    version: str | None


@dataclass
class _Turn:
    """A digest's lease held by one call: its in-process lock, its renewer, and whether it has ended."""

    digest_id: int
    owner: str
    lock: asyncio.Lock
    renewal: asyncio.TimerHandle | None = None
    renewer: asyncio.Task[None] | None = None
    released: bool = False

    async def stop_renewing(self) -> None:
        if self.renewal is not None:
            self.renewal.cancel()
            self.renewal = None
        if self.renewer is not None:
            self.renewer.cancel()
            # wait, not await: the renewer's cancellation is no error, the caller's own would be.
            await asyncio.wait([self.renewer])
            self.renewer = None


def _crm_call(request: LogRequest, deadline: float) -> CrmCall:
    return CrmCall(
        user=request.user,
        contact=request.contact,
        authorization=request.authorization,
        extras=request.additional_submission,
        deadline=deadline,
        account=request.account,
    )


def _finished(claimed: ClaimedMessage) -> LogResult:
    assert claimed.crm_log_id is not None  # a logged message is always in a written record
    if not claimed.owned:
        return LogResult(claimed.crm_log_id, Outcome.ALREADY_LOGGED, claimed.local_date)
    outcome = Outcome.CREATED if claimed.logged_via == "create" else Outcome.APPENDED
    return LogResult(claimed.crm_log_id, outcome)
