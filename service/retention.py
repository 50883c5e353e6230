"""Keeps the store from growing forever: digests of days older than MESSAGELOG_RETENTION_DAYS go.

The store holds a digest for two reasons: later messages of the same day are added to its CRM
record, and a message sent again is recognised as logged (ALREADY_LOGGED, no CRM call). Both
matter only while callers can still send messages of that day. Past the window a digest is
deleted with its messages once every message is logged and no write holds its lease; a digest
with a message still pending stays until that message is logged or withdrawn. The cost of a
window too short: a message older than it that a caller sends again is logged again (in a new
record of its day), and UpdateMessageLog with a purged record's log_id is LOG_NOT_FOUND.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import structlog

from service.errors import StoreUnavailable
from service.store import Store

log = structlog.get_logger("messagelog.retention")

PURGE_EVERY_SECONDS = 3600.0
# A batch is one transaction, and SQLite's run on the event loop: 100 digests take it ~10 ms,
# 1,000 took 130 ms, every call waiting meanwhile.
_BATCH = 100


async def purge_expired(store: Store, retention_days: int, today: date | None = None) -> int:
    """Deletes every expired digest, in short transactions; returns how many."""
    before = (today or datetime.now(UTC).date()) - timedelta(days=retention_days)
    total = 0
    while True:
        purged = await store.purge(before, _BATCH)
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
