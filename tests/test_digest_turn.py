"""A call's turn at a digest (service.digest.DigestTurn): the lock, the lease, its renewal, its
release and the withdrawal of a failed call's message, each seen happen.

The digest logic runs here without the gRPC layer, against the real Pipedrive adapter and a fake
Pipedrive whose record writes wait at a gate the test opens: calls overlap because the test holds
a write, never because of a sleep. Two DigestLoggers on one store are two server processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from service.adapters.base import HttpCrmAdapter
from service.adapters.registry import AdapterRegistry
from service.config import Settings
from service.digest import DigestLogger
from service.errors import CrmRejected, DigestBusy
from service.limits import CrmCapacity
from service.model import LogRequest, Outcome
from service.store import ClaimedMessage, MessageState, Store, open_store
from service.validation import parse_request
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

T = TypeVar("T")
WRITES = r"^/api/v2/activities"
TODAY = datetime.now(UTC).date().isoformat()


class GatedPipedrive(FakePipedrive):
    """The fake Pipedrive, but a record write (create or update) waits for `gate` once it arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.write_arrived = asyncio.Event()

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        if request.method in ("POST", "PATCH") and request.path.startswith("/api/v2/activities"):
            self.write_arrived.set()
            await self.gate.wait()
        return await super().handle(request)


@dataclass
class Rig:
    fake: GatedPipedrive
    store: Store
    adapter: HttpCrmAdapter
    path: Path

    def logger(self, lease_seconds: float = 15.0) -> DigestLogger:
        """A DigestLogger on the shared store: another one is another server process."""
        return DigestLogger(
            self.store, lease_seconds=lease_seconds, create_settle_seconds=30.0, crm_capacity=CrmCapacity({})
        )

    def state(self, message_id: str) -> MessageState | None:
        """The message's state in the store; None when it is not there (withdrawn, or never filed)."""
        with closing(sqlite3.connect(self.path)) as db:
            row = db.execute("SELECT state FROM messages WHERE message_id = ?", (message_id,)).fetchone()
        return None if row is None else MessageState(row[0])

    def digest_id(self) -> int:
        with closing(sqlite3.connect(self.path)) as db:
            ((digest_id,),) = db.execute("SELECT id FROM digests").fetchall()
        return int(digest_id)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    fake = GatedPipedrive()
    async with fake.serve() as base_url, httpx.AsyncClient() as http:
        settings = Settings.from_env({"MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url})
        path = tmp_path / "digest.db"
        store = await open_store(f"sqlite:///{path}")
        try:
            yield Rig(fake, store, AdapterRegistry(settings, http).get("pipedrive"), path)
        finally:
            await store.close()


def request(message_id: str, minute: int = 0) -> LogRequest:
    parsed = parse_request(
        add_request("pipedrive", sms(message_id, f"{TODAY}T15:{minute:02d}:00Z", f"text of {message_id}")),
        authorization="Bearer pd-token",
        known_crms=("pipedrive",),
    )
    return replace(parsed, account="acme.pipedrive.com")


async def reached(event: asyncio.Event) -> None:
    """Waits for event; a test whose event never comes fails rather than hangs."""
    async with asyncio.timeout(30):
        await event.wait()


def in_seconds(seconds: float) -> float:
    return time.monotonic() + seconds


def counted(calls: list[str], name: str, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    async def counting(*args: Any, **kwargs: Any) -> T:
        calls.append(name)
        return await fn(*args, **kwargs)

    return counting


def spy(store: Store, *names: str) -> list[str]:
    """Records, in order, the calls of these store operations."""
    calls: list[str] = []
    for name in names:
        setattr(store, name, counted(calls, name, getattr(store, name)))
    return calls


async def test_a_call_nobody_else_writes_for_claims_and_leases_in_one_transaction_without_renewal(
    rig: Rig,
) -> None:
    calls = spy(rig.store, "claim", "claim_and_lease", "lease_and_load", "try_lease", "release_lease")

    result = await rig.logger().log(request("m1"), rig.adapter, deadline=in_seconds(10))

    assert result.outcome is Outcome.CREATED
    # Recording the write ended the lease: nothing to release, and a fast write renews nothing.
    assert calls == ["claim_and_lease"]


async def test_a_caller_gone_mid_write_still_gets_its_write_recorded_and_drain_waits_for_it(rig: Rig) -> None:
    logger = rig.logger()
    rig.fake.gate.clear()
    call = asyncio.create_task(logger.log(request("m1"), rig.adapter, deadline=in_seconds(10)))
    await reached(rig.fake.write_arrived)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    draining = asyncio.create_task(logger.drain())
    await asyncio.sleep(0)
    assert not draining.done()  # the write is still at the CRM
    rig.fake.gate.set()
    await draining

    assert rig.state("m1") is MessageState.LOGGED
    (activity,) = rig.fake.activities.values()
    assert "text of m1" in activity["note"]
    # The lease and the lock ended with the write: another process appends at once.
    later = await rig.logger().log(request("m2", 5), rig.adapter, deadline=in_seconds(10))
    assert later.outcome is Outcome.APPENDED


async def test_waiting_for_this_process_s_lock_past_the_deadline_is_busy_and_withdrawn(
    rig: Rig,
) -> None:
    logger = rig.logger()
    rig.fake.gate.clear()
    first = asyncio.create_task(logger.log(request("m1"), rig.adapter, deadline=in_seconds(10)))
    await reached(rig.fake.write_arrived)

    with pytest.raises(DigestBusy, match="another call"):
        await logger.log(request("m2", 5), rig.adapter, deadline=in_seconds(0.05))

    rig.fake.gate.set()
    assert (await first).outcome is Outcome.CREATED
    assert rig.state("m2") is None
    (activity,) = rig.fake.activities.values()
    assert "text of m2" not in activity["note"]


async def test_a_call_cancelled_waiting_for_the_lock_withdraws_and_leaves_the_lock_free(
    rig: Rig,
) -> None:
    logger = rig.logger()
    rig.fake.gate.clear()
    first = asyncio.create_task(logger.log(request("m1"), rig.adapter, deadline=in_seconds(10)))
    await reached(rig.fake.write_arrived)
    filed = asyncio.Event()
    claim = rig.store.claim

    async def claiming(*args: Any, **kwargs: Any) -> ClaimedMessage:
        claimed = await claim(*args, **kwargs)
        filed.set()
        return claimed

    rig.store.claim = claiming  # type: ignore[method-assign]
    waiting = asyncio.create_task(logger.log(request("m2", 5), rig.adapter, deadline=in_seconds(10)))
    await reached(filed)
    assert rig.state("m2") is MessageState.PENDING

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert rig.state("m2") is None
    rig.fake.gate.set()
    await first

    third = await logger.log(request("m3", 9), rig.adapter, deadline=in_seconds(10))
    assert third.outcome is Outcome.APPENDED
    (activity,) = rig.fake.activities.values()
    assert "text of m3" in activity["note"]


async def test_a_call_waiting_for_another_process_s_lease_past_its_deadline_is_busy(rig: Rig) -> None:
    rig.fake.gate.clear()
    first = asyncio.create_task(rig.logger().log(request("m1"), rig.adapter, deadline=in_seconds(10)))
    await reached(rig.fake.write_arrived)

    with pytest.raises(DigestBusy, match="another server"):
        await rig.logger().log(request("m2", 5), rig.adapter, deadline=in_seconds(0.1))

    rig.fake.gate.set()
    await first
    assert rig.state("m2") is None


async def test_a_slow_write_renews_its_lease_past_its_first_expiry_and_releases_it_after(rig: Rig) -> None:
    renewals: list[str] = []
    renewed = asyncio.Event()
    try_lease = rig.store.try_lease

    async def renewing(digest_id: int, owner: str, ttl_ms: int) -> bool:
        renewals.append(owner)
        renewed.set()
        return await try_lease(digest_id, owner, ttl_ms)

    rig.store.try_lease = renewing  # type: ignore[method-assign]
    lease_seconds = 0.3
    rig.fake.gate.clear()
    first = asyncio.create_task(
        rig.logger(lease_seconds).log(request("m1"), rig.adapter, deadline=in_seconds(30))
    )
    await reached(rig.fake.write_arrived)
    # A renewal every third of the lease: after four, the first lease would have run out.
    while len(renewals) < 4:
        renewed.clear()
        await reached(renewed)

    assert not await try_lease(rig.digest_id(), "another process", 1000)
    rig.fake.gate.set()
    assert (await first).outcome is Outcome.CREATED
    assert await try_lease(rig.digest_id(), "another process", 1000)


async def test_a_failed_write_withdraws_the_message_and_ends_lease_and_lock(rig: Rig) -> None:
    logger = rig.logger()
    rig.fake.inject(Fault(status=400, body={"success": False, "error": "bad"}, method="POST"))

    with pytest.raises(CrmRejected):
        await logger.log(request("m1"), rig.adapter, deadline=in_seconds(10))

    assert rig.state("m1") is None
    assert await rig.store.try_lease(rig.digest_id(), "another process", 1000)
    await rig.store.release_lease(rig.digest_id(), "another process")
    retry = await logger.log(request("m1"), rig.adapter, deadline=in_seconds(10))
    assert retry.outcome is Outcome.CREATED
