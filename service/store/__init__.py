"""The digest and idempotency store, on SQLite (default) or PostgreSQL."""

from service.store.store import ClaimedMessage, Leased, MessageState, Store, StoredDigest, open_store

__all__ = ["ClaimedMessage", "Leased", "MessageState", "Store", "StoredDigest", "open_store"]
