"""A digest stored before zones and parts were kept (schema 0005) upgrades in place and goes on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from service.model import LogRequest
from service.store import MessageState, open_store
from service.store.database import _MIGRATIONS
from service.validation import parse_request
from tests.helpers import add_request, sms

TODAY = datetime.now(UTC).date().isoformat()


def request(message_id: str, log_id: str = "") -> LogRequest:
    parsed = parse_request(
        add_request("pipedrive", sms(message_id, f"{TODAY}T15:00:00Z")),
        authorization="Bearer pd-token",
        known_crms=("pipedrive",),
    )
    return replace(parsed, account="acme", log_id=log_id)


async def test_a_digest_from_schema_0005_takes_later_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    old = request("m1")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.execute(
            sa.text(
                "INSERT INTO digests (scope, thread_key, local_date, kind, crm, account_host, crm_user_id,"
                " contact_id, crm_log_id, ref, created_ms, updated_ms)"
                " VALUES (:scope, :thread, :day, 'sms', 'pipedrive', 'acme', '1001', '42', '501', 'r', 1, 1)"
            ),
            {"scope": old.scope, "thread": old.thread_key, "day": old.local_date.isoformat()},
        )
    engine.dispose()

    store = await open_store(f"sqlite:///{path}")
    try:
        updated = await store.claim_in_log(request("m2", log_id="501"), "owner-2")
        added = await store.claim(request("m3"), "owner-3")
        digest = await store.load(updated.digest_id)
    finally:
        await store.close()

    assert updated.state is MessageState.PENDING and updated.crm_log_id == "501"
    assert added.digest_id == updated.digest_id
    # No zone was kept: each write renders in its call's zone, as before the upgrade.
    assert (digest.zone_label, digest.part, digest.continues_log_id) == (None, 1, None)
    assert [e.message_id for e in digest.entries] == ["m2", "m3"]
