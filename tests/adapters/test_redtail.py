"""Redtail's own quirks: the activity payload, the UserKey header, HTML, the host allow-list, an
append that reads the activity first, and a lost create made again (a documented limit).

Redtail's activities API is unverified (no official source was found): these tests hold the
adapter to what it sends, not to a checked contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.redtail import FakeRedtail
from tests.helpers import add_request, sms

AUTH = "Userkeyauth cnQtYXBpLWtleTpydC11c2VyLWtleQ=="  # base64("rt-api-key:rt-user-key")


@pytest.fixture
async def redtail(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeRedtail(), AUTH) as harness:
        yield harness


def request(message: pb.Message, **kw: Any) -> Any:
    kw.setdefault("hostname", "smf.crm3.redtailtechnology.com")
    return add_request("redtail", message, **kw)


async def test_create_posts_one_completed_linked_activity_and_an_append_reads_then_patches(
    redtail: Harness,
) -> None:
    created = await redtail.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    (create,) = redtail.fake.requests
    await redtail.add(request(sms("m2", "2026-11-20T16:30:00Z", "second")))
    append = redtail.fake.requests[1:]

    assert (create.method, create.path) == ("POST", "/api/public/v1/activities")
    assert create.headers["authorization"] == AUTH
    assert {k: v for k, v in create.body.items() if k not in ("subject", "description")} == {
        "start_date": "2026-11-20T15:00:00Z",
        "end_date": "2026-11-20T15:00:00Z",
        "all_day": False,
        "activity_code_id": 3,
        "repeats": "never",
        "completed": True,
        "linked_contacts": [{"contact_id": 42}],
    }
    path = f"/api/public/v1/activities/{created.log_id}"
    assert [(r.method, r.path) for r in append] == [("GET", path), ("PATCH", path)]
    assert append[1].body["end_date"] == "2026-11-20T16:30:00Z"
    assert set(append[1].body) == {"subject", "description", "end_date"}
    activity = redtail.fake.activities[int(created.log_id)]
    assert activity["completed"] is True and activity["linked_contacts"] == [{"contact_id": 42}]


async def test_the_description_is_html_with_message_text_escaped(redtail: Harness) -> None:
    created = await redtail.add(request(sms("m1", text="<b>50%</b> & more")))

    description = redtail.fake.record_body(created.log_id)
    assert "&lt;b&gt;50%&lt;/b&gt; &amp; more" in description
    assert "<b>50%</b>" not in description
    assert description.startswith("<b>SMS conversation with Jane Doe")


async def test_the_legacy_free_crm_host_is_allowed(redtail: Harness) -> None:
    response = await redtail.add(request(sms("m1"), hostname="crm.redtailtechnology.com"))

    assert response.outcome == pb.LOG_OUTCOME_CREATED


@pytest.mark.parametrize(
    "hostname",
    [
        "evil.example.com",
        "smf.crm3.redtailtechnology.com.evil.example",
        "evilredtailtechnology.com",
        "redtailtechnology.com",
    ],
)
async def test_a_host_outside_redtailtechnology_com_is_refused_before_any_request(
    redtail: Harness, hostname: str
) -> None:
    status = await redtail.add_error(request(sms("m1"), hostname=hostname))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {"user.hostname"}
    assert redtail.fake.requests == []


async def test_a_contact_id_that_is_not_a_redtail_id_is_refused_before_any_request(redtail: Harness) -> None:
    status = await redtail.add_error(request(sms("m1"), contact_id="rt-42"))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"contact.id"}
    assert redtail.fake.requests == []


async def test_a_persons_edit_of_the_description_is_kept(redtail: Harness) -> None:
    created = await redtail.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    edited = "<p>Client asked for a review meeting. <i>(Bob)</i></p>"
    redtail.fake.edit_record(created.log_id, edited)

    await redtail.add(request(sms("m2", "2026-11-20T16:30:00Z", "second")))

    description = redtail.fake.record_body(created.log_id)
    assert description.startswith(edited)
    assert "second" in description and "first" not in description


async def test_a_lost_create_is_made_again_a_documented_limit(make_harness: Callable[..., Any]) -> None:
    # No way to list or search Redtail activities is documented, so the record is duplicated.
    settle = str(SETTLE_SECONDS)
    async with make_harness(FakeRedtail(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=settle) as crm:
        lost = request(sms("m1", text="first words"))
        retry = await lose_create_then_retry(crm, lost, "POST", r"activities$")

    assert len(crm.fake.record_ids()) == 2
    assert retry.log_id == crm.fake.record_ids()[-1]
    assert [r.method for r in crm.fake.requests] == ["POST", "POST"]
