"""The digest picks one append and one lost-create strategy per adapter, from its declarations,
and never calls what an adapter did not declare.

A Pipedrive adapter that declares less than it can do stands for a CRM whose API cannot read or
search records: it talks to the same fake Pipedrive, so what the digest sends can be seen.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from service.adapters.base import HttpCrmAdapter, RecordVersions
from service.adapters.clio import ClioAdapter
from service.adapters.pipedrive import PipedriveAdapter
from service.config import Settings
from service.digest import Append, DigestLogger, LostCreate, Strategies
from service.errors import CrmUnavailable
from service.limits import CrmCapacity
from service.model import LogRequest, Outcome
from service.store import open_store
from service.validation import parse_request
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

TODAY = datetime.now(UTC).date().isoformat()
CREATE = r"^/api/v2/activities$"
RECORD = r"^/api/v2/activities/\d+$"


class BlindPipedrive(PipedriveAdapter):
    """Declares that it can neither read a record nor find a lost create."""

    reads_records = False
    finds_created = False
    read_record = HttpCrmAdapter.read_record
    find_created = HttpCrmAdapter.find_created


class VersionedPipedrive(PipedriveAdapter):
    """Declares conditional writes on top of Pipedrive's reads."""

    versions = RecordVersions(at=("data", "update_time"), header="If-Match")


@pytest.mark.parametrize(
    ("adapter", "append", "lost_create"),
    [
        (PipedriveAdapter, Append.READ_THEN_WRITE, LostCreate.FIND),
        (VersionedPipedrive, Append.CONDITIONAL, LostCreate.FIND),
        (BlindPipedrive, Append.OVERWRITE, LostCreate.CREATE_AGAIN),
        (
            ClioAdapter,
            Append.CONDITIONAL,
            LostCreate.FIND if ClioAdapter.finds_created else LostCreate.CREATE_AGAIN,
        ),
    ],
)
async def test_the_strategies_follow_the_declarations(
    adapter: type[HttpCrmAdapter], append: Append, lost_create: LostCreate
) -> None:
    async with httpx.AsyncClient() as http:
        built = adapter(http=http, settings=Settings.from_env({}).crm(adapter.name))

    assert Strategies.of(built) == Strategies(append, lost_create)


@pytest.fixture
async def blind(tmp_path: Path) -> AsyncIterator[tuple[FakePipedrive, DigestLogger, HttpCrmAdapter]]:
    fake = FakePipedrive()
    async with fake.serve() as base_url, httpx.AsyncClient() as http:
        settings = Settings.from_env(
            {"MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url, "MESSAGELOG_CRM_TIMEOUT": "0.5"}
        )
        store = await open_store(f"sqlite:///{tmp_path / 'digest.db'}")
        try:
            logger = DigestLogger(
                store, lease_seconds=15, create_settle_seconds=0.0, crm_capacity=CrmCapacity({})
            )
            yield fake, logger, BlindPipedrive(http=http, settings=settings.crm("pipedrive"))
        finally:
            await store.close()


def request(message_id: str, minute: int) -> LogRequest:
    parsed = parse_request(
        add_request("pipedrive", sms(message_id, f"{TODAY}T15:{minute:02d}:00Z", f"words of {message_id}")),
        authorization="Bearer pd-token",
        known_crms=("pipedrive",),
    )
    return replace(parsed, account="acme.pipedrive.com")


async def test_an_overwrite_append_is_one_write_and_reads_nothing(
    blind: tuple[FakePipedrive, DigestLogger, HttpCrmAdapter],
) -> None:
    fake, logger, adapter = blind
    first = await logger.log(request("m1", 0), adapter, deadline=time.monotonic() + 10)
    fake.edit_record(first.log_id, "a person's words")

    second = await logger.log(request("m2", 1), adapter, deadline=time.monotonic() + 10)

    assert second.outcome is Outcome.APPENDED
    assert fake.calls("GET", RECORD) == []
    assert len(fake.calls("PATCH", RECORD)) == 1
    # The documented limit: a CRM that cannot return a record loses a person's edit of it.
    assert "a person's words" not in fake.record_body(first.log_id)


async def test_a_lost_create_is_created_again_where_it_cannot_be_found(
    blind: tuple[FakePipedrive, DigestLogger, HttpCrmAdapter],
) -> None:
    fake, logger, adapter = blind
    fake.inject(
        Fault(status=500, body={"success": False}, method="POST", path_pattern=CREATE, after_effect=True)
    )
    with pytest.raises(CrmUnavailable):
        await logger.log(request("m1", 0), adapter, deadline=time.monotonic() + 10)

    retried = await logger.log(request("m1", 0), adapter, deadline=time.monotonic() + 10)

    assert retried.outcome is Outcome.CREATED
    assert fake.calls("GET", CREATE) == []  # never searched
    # The documented limit: the CRM now holds the lost create's record and the new one.
    assert len(fake.activities) == 2
