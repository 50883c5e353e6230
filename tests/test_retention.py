"""The retention purge: expired, fully logged digests go with their messages; nothing else does."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from service.config import Settings, SettingsError
from service.model import LogRequest
from service.retention import purge_expired
from service.store import MessageState, Store, open_store
from service.validation import parse_request
from tests.helpers import add_request, sms

TODAY = date(2026, 11, 25)


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


async def test_a_logged_digest_past_the_window_is_purged_with_its_messages(store: Store) -> None:
    old = _request("old-1", "2026-10-01T15:00:00Z", "conv-old")
    old_second = _request("old-2", "2026-10-01T16:00:00Z", "conv-old")
    recent = _request("recent-1", "2026-11-20T15:00:00Z", "conv-recent")
    for request in (old, old_second, recent):
        await _log(store, request)

    assert await purge_expired(store, 35, today=TODAY) == 1

    # Past the window a message sent again is new to the store (and would be logged again).
    again = await store.claim(old, "retry")
    assert again.state is MessageState.PENDING and again.crm_log_id is None
    kept = await store.claim(recent, "retry")
    assert kept.state is MessageState.LOGGED


async def test_a_digest_with_a_pending_message_or_inside_the_window_stays(store: Store) -> None:
    await _log(store, _request("old-1", "2026-10-01T15:00:00Z", "conv-old"))
    pending = _request("old-2", "2026-10-01T16:00:00Z", "conv-old")
    await store.claim(pending, "a-call-in-progress")
    await _log(store, _request("edge-1", "2026-10-21T15:00:00Z", "conv-edge"))

    assert await purge_expired(store, 35, today=TODAY) == 0

    still = await store.claim(pending, "another-call")
    assert still.state is MessageState.PENDING and not still.owned


async def test_purging_runs_in_batches_until_nothing_is_left(store: Store) -> None:
    for n in range(5):
        await _log(store, _request(f"old-{n}", "2026-09-01T15:00:00Z", f"conv-{n}"))

    assert await store.purge(date(2026, 10, 1), batch=2) == 2
    assert await purge_expired(store, 35, today=TODAY) == 3
    assert await purge_expired(store, 35, today=TODAY) == 0


def test_the_retention_window_is_a_setting_with_a_floor() -> None:
    assert Settings.from_env({}).retention_days == 35
    assert Settings.from_env({"MESSAGELOG_RETENTION_DAYS": "90"}).retention_days == 90
    with pytest.raises(SettingsError, match="MESSAGELOG_RETENTION_DAYS"):
        Settings.from_env({"MESSAGELOG_RETENTION_DAYS": "1"})
