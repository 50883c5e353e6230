"""Keeps the store from growing forever: a digest goes MESSAGELOG_RETENTION_DAYS after its last write.

The store holds a digest for two reasons: later messages of the same day are added to its CRM
record, and a message sent again is recognised as logged (ALREADY_LOGGED, no CRM call). Both
matter while callers still send that conversation-day's messages, and a backfill sends messages
of any age: so the window runs from the digest's last write (updated_ms), never from the
messages' dates. A message dated months back that was logged today is remembered for the whole
window, like one of today's. Past the window a digest is deleted with its messages once every
message is logged and no write holds its lease; a digest with a message still pending stays until
that message is logged or withdrawn. The cost of a window too short: a message that a caller
sends again more than the window after its digest's last write is logged again (in a new record
of its day), and UpdateMessageLog with a purged record's log_id is LOG_NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from service.errors import StoreUnavailable
from service.store import Store

log = structlog.get_logger("messagelog.retention")

PURGE_EVERY_SECONDS = 3600.0
_DAY_MS = 86_400_000
# A batch is one transaction, and SQLite's run on the event loop: 100 digests take it ~10 ms,
# 1,000 took 130 ms, every call waiting meanwhile.
_BATCH = 100


async def purge_expired(store: Store, retention_days: int, now_ms: int | None = None) -> int:
    """Deletes every digest last written more than retention_days ago, in short transactions;
    returns how many."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    written_before_ms = now_ms - retention_days * _DAY_MS
    total = 0
    while True:
        purged = await store.purge(written_before_ms, _BATCH)
        total += purged
        if purged < _BATCH:
            return total
        # Calls go first between batches (a SQLite transaction never yields to them).
        await asyncio.sleep(0)


async def purge_periodically(store: Store, retention_days: int, every: float = PURGE_EVERY_SECONDS) -> None:
    while True:
        try:
            purged = await purge_expired(store, retention_days)
        except StoreUnavailable:
            log.warning("retention_purge_failed", detail="the store is unavailable; trying again later")
        else:
            if purged:
                log.info("retention_purged", digests=purged, retention_days=retention_days)
        await asyncio.sleep(every)
