"""The retention purge: digests last written more than the window ago, fully logged, go with their
messages, whatever the messages' dates; nothing else does."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from messagelog.v1 import message_log_pb2 as pb

from service.config import Settings, SettingsError
from service.model import LogRequest
from service.retention import purge_expired
from service.store import MessageState, Store, open_store
from service.validation import parse_request
from tests.conftest import PIPEDRIVE_AUTH
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms, update_request

DAY_MS = 86_400_000


def days_ago(days: int) -> str:
    """Noon UTC `days` days before today, as the requests carry it."""
    day = datetime.now(UTC).date() - timedelta(days=days)
    return f"{day.isoformat()}T12:00:00Z"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'retention.db'}")
    yield opened
    await opened.close()


def _request(message_id: str, at: str, conversation: str) -> LogRequest:
    parsed = parse_request(
        add_request("pipedrive", sms(message_id, at, conversation=conversation)),
        authorization="Bearer pd-token",
        known_crms=("pipedrive",),
    )
    return replace(parsed, account="acme.pipedrive.com")


async def _log(store: Store, request: LogRequest) -> None:
    """What a successful call leaves in the store: claimed, leased, written, recorded."""
    owner = secrets.token_hex(8)
    claimed = await store.claim(request, owner)
    leased = await store.lease_and_load(
        claimed.digest_id, owner, 15_000, request.scope, request.entry.message_id
    )
    assert leased is not None and leased.digest is not None
    await store.record_written(
        claimed.digest_id, "501", leased.digest.pending_ids, "create", "fp", None, owner
    )


async def test_a_digest_goes_the_window_after_its_last_write_whatever_its_messages_dates(
    store: Store,
) -> None:
    old = _request("old-1", days_ago(90), "conv-old")
    old_second = _request("old-2", days_ago(90), "conv-old")
    today = _request("today-1", days_ago(0), "conv-today")
    for request in (old, old_second, today):
        await _log(store, request)

    # Written just now: a message 90 days old is remembered like one of today's.
    assert await purge_expired(store, 35) == 0
    assert (await store.claim(old, "retry")).state is MessageState.LOGGED

    # 36 days after the last write, every digest has outlived the window.
    assert await purge_expired(store, 35, now_ms=now_ms() + 36 * DAY_MS) == 2

    # Past the window a message sent again is new to the store (and would be logged again).
    again = await store.claim(old, "retry")
    assert again.state is MessageState.PENDING and again.crm_log_id is None


async def test_a_digest_with_a_pending_message_or_written_inside_the_window_stays(store: Store) -> None:
    await _log(store, _request("old-1", days_ago(200), "conv-old"))
    pending = _request("old-2", days_ago(200), "conv-old")
    await store.claim(pending, "a-call-in-progress")

    assert await purge_expired(store, 35, now_ms=now_ms() + 36 * DAY_MS) == 0
    assert await purge_expired(store, 35, now_ms=now_ms() + 34 * DAY_MS) == 0

    still = await store.claim(pending, "another-call")
    assert still.state is MessageState.PENDING and not still.owned


async def test_purging_runs_in_batches_until_nothing_is_left(store: Store) -> None:
    for n in range(5):
        await _log(store, _request(f"old-{n}", days_ago(60), f"conv-{n}"))
    later = now_ms() + 40 * DAY_MS

    assert await store.purge(later, batch=2) == 2
    assert await purge_expired(store, 35, now_ms=later) == 3
    assert await purge_expired(store, 35, now_ms=later) == 0


async def test_a_backfilled_message_is_remembered_across_restarts_and_its_record_stays_updatable(
    make_harness: Callable[..., Any],
) -> None:
    """A message dated 90 days back, logged, then a restart (which purges) and a re-send: the
    store still knows it, and UpdateMessageLog still finds its record."""
    first = add_request("pipedrive", sms("hist-1", days_ago(90), "from the history"))
    fake = FakePipedrive()
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        created = await h.add(first)
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        # What every process does at startup and then hourly, done here so it has surely run.
        assert await purge_expired(h.server.store, 35) == 0
        again = await h.add(first)
        later = sms("hist-2", days_ago(90).replace("T12:", "T13:"), "also from the history")
        updated = await h.update(update_request(add_request("pipedrive", later), created.log_id))

    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert again.log_id == created.log_id
    assert updated.outcome == pb.LOG_OUTCOME_APPENDED and updated.log_id == created.log_id
    [record] = fake.activities.values()
    assert "from the history" in record["note"] and "also from the history" in record["note"]


def test_the_retention_window_is_a_setting_with_a_floor() -> None:
    assert Settings.from_env({}).retention_days == 35
    assert Settings.from_env({"MESSAGELOG_RETENTION_DAYS": "90"}).retention_days == 90
    with pytest.raises(SettingsError, match="MESSAGELOG_RETENTION_DAYS"):
        Settings.from_env({"MESSAGELOG_RETENTION_DAYS": "1"})
