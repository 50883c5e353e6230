"""The digest and idempotency store, on SQLite (default) or PostgreSQL."""

from service.store.store import (
    RECORD_CAP,
    ClaimedMessage,
    Leased,
    MessageState,
    RecordCap,
    Store,
    StoredDigest,
    open_store,
)

__all__ = [
    "RECORD_CAP",
    "ClaimedMessage",
    "Leased",
    "MessageState",
    "RecordCap",
    "Store",
    "StoredDigest",
    "open_store",
]
