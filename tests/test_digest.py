"""A digest's lease and lifecycle, end to end and on both stores: lease renewal during a slow write,
a call cancelled mid CRM write, the drain on shutdown, DIGEST_BUSY at the lock and at another
process's lease, and an upgrade from an older schema that holds data."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from messagelog.v1 import message_log_pb2 as pb

import service.digest
from service.adapters.registry import AdapterRegistry
from service.config import Settings
from service.digest import DigestLogger
from service.errors import DigestBusy
from service.limits import CrmCapacity
from service.model import Outcome
from service.outbound import http_client, origin
from service.store import MessageState, open_store
from service.store.database import _MIGRATIONS
from service.validation import parse_request
from tests.conftest import PIPEDRIVE_AUTH
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms


class GatedPipedrive(FakePipedrive):
    """Holds every write (POST, PATCH) until `gate` is set; `writing` is set when one arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        if request.method in ("POST", "PATCH"):
            self.writing.set()
            await self.gate.wait()
        return await super().handle(request)

    def writes(self) -> int:
        return len(self.calls("POST")) + len(self.calls("PATCH"))


def _message(message_id: str) -> Any:
    return add_request("pipedrive", sms(message_id, text=f"text of {message_id}"))


async def test_a_write_slower_than_the_lease_keeps_it_renewed(make_harness: Callable[..., Any]) -> None:
    fake = GatedPipedrive()
    async with make_harness(fake, PIPEDRIVE_AUTH, MESSAGELOG_DIGEST_LEASE_SECONDS="0.3") as h:
        call = asyncio.ensure_future(h.add(_message("m1")))
        await fake.writing.wait()
        # Three leases long: an unrenewed lease would have expired twice over.
        await asyncio.sleep(0.9)
        assert not await h.server.store.try_lease(1, "another-process", 300)
        fake.gate.set()
        assert (await call).outcome == pb.LOG_OUTCOME_CREATED
        # The recording ended the lease: the digest is free again.
        assert await h.server.store.try_lease(1, "another-process", 300)


async def test_a_call_cancelled_mid_crm_write_still_records_the_write(
    make_harness: Callable[..., Any],
) -> None:
    fake = GatedPipedrive()
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        call = asyncio.ensure_future(h.add(_message("m1")))
        await fake.writing.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        fake.gate.set()
        # Sent again, it waits for the write its first call left running, and finds it logged.
        again = await h.add(_message("m1"))

    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert fake.writes() == 1 and len(fake.activities) == 1


async def test_shutdown_drains_writes_whose_callers_went_away(
    make_harness: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = GatedPipedrive()
    drain = service.digest.DigestLogger.drain

    async def drain_once_the_crm_answers(self: service.digest.DigestLogger) -> None:
        # The CRM answers only once the server is stopping: the write is still running then.
        fake.gate.set()
        await drain(self)

    monkeypatch.setattr(service.digest.DigestLogger, "drain", drain_once_the_crm_answers)
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        call = asyncio.ensure_future(h.add(_message("m1")))
        await fake.writing.wait()
        call.cancel()
    assert fake.writes() == 1

    # A new process finds the write recorded: no second write.
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        again = await h.add(_message("m1"))
    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert fake.writes() == 1


async def test_a_call_that_waits_past_its_deadline_for_the_lock_is_digest_busy(env: dict[str, str]) -> None:
    """Through the DigestLogger itself: over gRPC the caller's own deadline, which the server's
    budget equals, would answer DEADLINE_EXCEEDED at the same instant."""
    fake = GatedPipedrive()
    store = await open_store(env["MESSAGELOG_DATABASE_URL"], env)
    async with fake.serve() as url, http_client([origin(httpx.URL(url))], "httpx") as http:
        settings = Settings.from_env({"MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": url})
        adapter = AdapterRegistry(settings, http).get("pipedrive")
        digests = DigestLogger(
            store, lease_seconds=15, create_settle_seconds=30, crm_capacity=CrmCapacity({})
        )
        first, second = (
            parse_request(_message(m), authorization=PIPEDRIVE_AUTH, known_crms=("pipedrive",))
            for m in ("m1", "m2")
        )
        writing = asyncio.ensure_future(digests.log(first, adapter, deadline=time.monotonic() + 10))
        await fake.writing.wait()
        with pytest.raises(DigestBusy):
            await digests.log(second, adapter, deadline=time.monotonic() + 0.2)
        fake.gate.set()
        assert (await writing).outcome is Outcome.CREATED
    await store.close()

    # The busy call's message was withdrawn: nothing of it reached the CRM.
    assert "text of m2" not in str(fake.activities)


async def test_a_call_that_waits_past_its_deadline_for_another_process_lease_is_digest_busy(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive()
    async with make_harness(fake, PIPEDRIVE_AUTH, MESSAGELOG_MAX_CALL_SECONDS="0.5") as h:
        await h.add(_message("m1"))
        # Another process writes the digest (its lease outlasts this call's deadline).
        assert await h.server.store.try_lease(1, "another-process", 60_000)
        error = await h.add_error(_message("m2"))
        await h.server.store.release_lease(1, "another-process")
        after = await h.add(_message("m2"))

    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "DIGEST_BUSY")
    assert after.outcome == pb.LOG_OUTCOME_APPENDED


@pytest.fixture
def at_revision_0004(tmp_path: Path) -> Iterator[str]:
    """An SQLite store at migration 0004 (before the record versions and retention by activity)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "0004")
        yield url
    finally:
        engine.dispose()


async def test_an_upgrade_from_an_older_schema_keeps_its_data(at_revision_0004: str) -> None:
    request = replace(
        parse_request(_message("m1"), authorization=PIPEDRIVE_AUTH, known_crms=("pipedrive",)),
        account="acme.pipedrive.com",
    )
    engine = sa.create_engine(at_revision_0004)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO digests (id, scope, thread_key, local_date, kind, crm, account_host,"
                    " crm_user_id, contact_id, crm_log_id, ref, created_ms, updated_ms) VALUES (7, :scope,"
                    " :thread, :day, 'sms', 'pipedrive', 'acme.pipedrive.com', '1001', '42', '501', 'r',"
                    " 1, :now)"
                ),
                {
                    "scope": request.scope,
                    "thread": request.thread_key,
                    "day": request.local_date.isoformat(),
                    "now": 2**40,
                },
            )
            connection.execute(
                sa.text(
                    "INSERT INTO messages (scope, message_id, digest_id, created_ms, state, logged_via,"
                    " owner, entry, recorded_ms) VALUES (:scope, 'm1', 7, 1, 'logged', 'create', 'o',"
                    " :entry, 1)"
                ),
                {"scope": request.scope, "entry": request.entry.to_json()},
            )
    finally:
        engine.dispose()

    store = await open_store(at_revision_0004)
    try:
        claimed = await store.claim(request, secrets.token_hex(8))
        digest = await store.load(7)
    finally:
        await store.close()

    assert (claimed.state, claimed.crm_log_id, claimed.digest_id) == (MessageState.LOGGED, "501", 7)
    assert digest.crm_version is None and digest.entries[0].message_id == "m1"
