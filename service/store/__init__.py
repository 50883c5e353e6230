"""The digest and idempotency store, on SQLite (default) or PostgreSQL."""

from service.store.store import ClaimedMessage, MessageState, Store, StoredDigest, open_store

__all__ = ["ClaimedMessage", "MessageState", "Store", "StoredDigest", "open_store"]
