"""Per-account lookups are fetched once for a burst of calls, and one caller's failure is not another's."""

from __future__ import annotations

import asyncio

import pytest

from service.adapters.base import TtlCache
from service.errors import CrmAuthFailed


async def test_concurrent_misses_share_one_fetch() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    fetches = 0

    async def fetch() -> str:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)
        return "sms"

    values = await asyncio.gather(*(cache.get_or_fetch("acme", fetch) for _ in range(20)))

    assert values == ["sms"] * 20
    assert fetches == 1
    assert await cache.get_or_fetch("acme", fetch) == "sms" and fetches == 1


async def test_a_failed_shared_fetch_is_retried_with_the_waiters_own() -> None:
    cache: TtlCache[str, str] = TtlCache(60)

    async def refused() -> str:
        await asyncio.sleep(0.01)
        raise CrmAuthFailed("bad token")

    async def accepted() -> str:
        return "sms"

    first = asyncio.ensure_future(cache.get_or_fetch("acme", refused))
    await asyncio.sleep(0)
    second = await cache.get_or_fetch("acme", accepted)

    assert second == "sms"
    with pytest.raises(CrmAuthFailed):
        await first
