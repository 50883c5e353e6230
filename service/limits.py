"""Caps on calls in progress, per caller and per CRM account."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from service.errors import MessageLogError

# What a refused caller is told to wait before trying again.
RETRY_AFTER_SECONDS = 1.0


class ConcurrencyLimit:
    """Counts calls in progress per key and refuses one more beyond the limit at once: queueing
    would only turn an overload into a pile of minutes-long calls."""

    def __init__(self, limit: int, refuse: Callable[[int], MessageLogError]) -> None:
        self._limit = limit
        self._refuse = refuse
        self._in_flight: Counter[str] = Counter()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        if self._in_flight[key] >= self._limit:
            raise self._refuse(self._limit)
        self._in_flight[key] += 1
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
