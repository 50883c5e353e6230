"""Insightly's own quirks: the Event payload with its link, Basic auth, pods, leads, the instance
as the account, an append that reads the event first, and a lost create found by a search."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.adapters.direct import account_key
from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.insightly import FakeInsightly
from tests.helpers import add_request, sms

AUTH = "Basic aW5zaWdodGx5LWtleTo="  # base64("insightly-key:"): the API key, an empty password


@pytest.fixture
async def insightly(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeInsightly(), AUTH) as harness:
        yield harness


def request(message: pb.Message, **kw: Any) -> Any:
    kw.setdefault("hostname", "api.na1.insightly.com")
    return add_request("insightly", message, **kw)


async def test_create_posts_one_linked_event_and_an_append_reads_it_then_puts_only_what_changed(
    insightly: Harness,
) -> None:
    created = await insightly.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    (create,) = insightly.fake.requests
    await insightly.add(request(sms("m2", "2026-11-20T16:30:00Z", "second")))
    append = insightly.fake.requests[1:]

    assert (create.method, create.path) == ("POST", "/v3.1/Events")
    assert create.headers["authorization"] == AUTH
    assert {k: v for k, v in create.body.items() if k not in ("TITLE", "DETAILS")} == {
        "START_DATE_UTC": "2026-11-20 15:00:00",
        "END_DATE_UTC": "2026-11-20 15:00:00",
        "ALL_DAY": False,
        "LINKS": [{"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": 42}],
    }
    assert [(r.method, r.path) for r in append] == [
        ("GET", f"/v3.1/Events/{created.log_id}"),
        ("PUT", "/v3.1/Events"),
    ]
    assert append[1].body["EVENT_ID"] == int(created.log_id)
    assert set(append[1].body) == {"EVENT_ID", "TITLE", "DETAILS", "END_DATE_UTC"}
    event = insightly.fake.events[int(created.log_id)]
    assert event["END_DATE_UTC"] == "2026-11-20 16:30:00"
    assert [link["LINK_OBJECT_ID"] for link in event["LINKS"]] == [42]  # the append kept the link
    assert event["DETAILS"].index("first") < event["DETAILS"].index("second")


async def test_a_lead_is_linked_as_a_lead(insightly: Harness) -> None:
    lead = request(sms("m1"), contact_id="77")
    lead.contact.type = "lead"

    await insightly.add(lead)

    (create,) = insightly.fake.calls("POST")
    assert create.body["LINKS"] == [{"LINK_OBJECT_NAME": "Lead", "LINK_OBJECT_ID": 77}]


async def test_another_pod_is_allowed(insightly: Harness) -> None:
    response = await insightly.add(request(sms("m1"), hostname="api.eu1.insightly.com"))

    assert response.outcome == pb.LOG_OUTCOME_CREATED


@pytest.mark.parametrize(
    "hostname",
    ["evil.example.com", "api.na1.insightly.com.evil.example", "insightly.com", "crm.na1.insightly.com"],
)
async def test_a_host_that_is_not_an_insightly_api_host_is_refused_before_any_request(
    insightly: Harness, hostname: str
) -> None:
    status = await insightly.add_error(request(sms("m1"), hostname=hostname))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {"user.hostname"}
    assert insightly.fake.requests == []


async def test_a_contact_id_that_is_not_an_insightly_id_is_refused_before_any_request(
    insightly: Harness,
) -> None:
    status = await insightly.add_error(request(sms("m1"), contact_id="C-42"))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"contact.id"}
    assert insightly.fake.requests == []


async def test_the_account_is_the_instance_the_api_key_belongs_to() -> None:
    # Pods serve many instances; GET /Instance names the key's by INSTANCE_SUBDOMAIN (the swagger's
    # APIInstance has INSTANCE_NAME, INSTANCE_SUBDOMAIN and PLAN_NAME, no id).
    fake = FakeInsightly()

    key = await account_key(fake, "insightly", AUTH, "api.na1.insightly.com")

    assert key == "insightly:acme"
    assert [(r.method, r.path) for r in fake.identity_lookups] == [("GET", "/v3.1/Instance")]


async def test_a_persons_edit_of_the_details_is_kept_and_later_messages_follow_it(insightly: Harness) -> None:
    created = await insightly.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    edited = "Jane confirmed the order by phone. (Alice)"
    insightly.fake.edit_record(created.log_id, edited)

    await insightly.add(request(sms("m2", "2026-11-20T16:30:00Z", "second")))

    details = insightly.fake.record_body(created.log_id)
    assert details.startswith(edited)
    assert "second" in details and "first" not in details


async def test_a_lost_create_is_found_among_the_events_updated_since(
    make_harness: Callable[..., Any],
) -> None:
    settle = str(SETTLE_SECONDS)
    async with make_harness(FakeInsightly(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=settle) as crm:
        lost = request(sms("m1", text="first words"))
        retry = await lose_create_then_retry(crm, lost, "POST", r"^/v3\.1/Events$")
        (log_id,) = crm.fake.record_ids()

    _, search, written = crm.fake.requests
    assert (search.method, search.path) == ("GET", "/v3.1/Events/Search")
    since = search.query.pop("updated_after_utc")
    assert search.query == {"brief": "true", "top": "500"}
    assert since.replace("T", " ").rstrip("Z") <= crm.fake.events[int(log_id)]["DATE_CREATED_UTC"]
    assert (written.method, written.body["EVENT_ID"]) == ("PUT", int(log_id))
    assert retry.log_id == log_id and crm.fake.record_ids() == [log_id]
    assert crm.fake.record_body(log_id).count("first words") == 1
