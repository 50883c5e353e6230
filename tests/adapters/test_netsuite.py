"""NetSuite's quirks: the phoneCall payload, the new id in Location, the account host and sales orders,
the read before an append and the SuiteQL query that finds a lost create."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.netsuite import ACCOUNT_HOST, FakeNetSuite
from tests.helpers import add_request, sms

AUTH = "Bearer ns-token"
ROOT = "/services/rest/record/v1"


def request(message: pb.Message, hostname: str = ACCOUNT_HOST, **kw: Any) -> Any:
    return add_request("netsuite", message, hostname=hostname, **kw)


@pytest.fixture
async def crm(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeNetSuite(), AUTH) as harness:
        yield harness


async def test_create_posts_a_completed_phone_call_and_reads_the_id_from_location(crm: Harness) -> None:
    response = await crm.add(request(sms("m1", text="Call me <later>")))

    (identity,) = crm.fake.identity_lookups
    (call,) = crm.fake.requests
    assert (identity.method, identity.path) == ("GET", f"{ROOT}/metadata-catalog/phonecall")
    assert (call.method, call.path) == ("POST", f"{ROOT}/phonecall")
    assert call.headers["authorization"] == AUTH
    assert call.body == {
        "title": "SMS conversation with Jane Doe - 2026-11-20",
        "message": crm.fake.record_body(response.log_id),
        "status": {"id": "COMPLETE"},
        "startDate": "2026-11-20",
        "contact": {"id": "42"},
    }
    assert "Call me <later>" in call.body["message"]
    assert response.log_id == crm.fake.record_ids()[0]


async def test_an_append_reads_the_message_then_patches_title_and_message(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    create, read, append = crm.fake.requests
    assert create.method == "POST"
    assert (read.method, read.path, read.query) == (
        "GET",
        f"{ROOT}/phonecall/{first.log_id}",
        {"fields": "message"},
    )
    assert (append.method, append.path) == ("PATCH", f"{ROOT}/phonecall/{first.log_id}")
    assert set(append.body) == {"title", "message"}
    assert append.body["message"].index("one") < append.body["message"].index("two")


async def test_a_sales_order_and_organization_link_the_call(crm: Harness) -> None:
    add = request(sms("m1"), extras={"salesOrder": "880"})
    add.contact.organization.id = "55"

    await crm.add(add)

    body = crm.fake.requests[0].body
    assert body["transaction"] == {"id": "880"}
    assert body["company"] == {"id": "55"}


async def test_a_sales_order_that_is_not_an_internal_id_is_invalid_and_unsent(crm: Harness) -> None:
    status = await crm.add_error(request(sms("m1"), extras={"salesOrder": "SO-880"}))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"additional_submission[salesOrder]"}
    assert crm.fake.requests == []


@pytest.mark.parametrize(
    "hostname",
    [
        "evil.example.com",
        "1234567.suitetalk.api.netsuite.com.evil.example",
        "1234567.app.netsuite.com.evil.example",
        "system.netsuite.com",
    ],
)
async def test_a_host_that_is_not_a_netsuite_rest_host_is_refused_unsent(crm: Harness, hostname: str) -> None:
    status = await crm.add_error(request(sms("m1"), hostname=hostname))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {"user.hostname"}
    assert crm.fake.requests == []


@pytest.mark.parametrize(
    "hostname",
    [
        "1234567-sb1.suitetalk.api.netsuite.com",
        "1234567-sb1.app.netsuite.com",
        "1234567-SB1.app.netsuite.com",
    ],
)
async def test_a_sandbox_account_host_is_accepted(crm: Harness, hostname: str) -> None:
    response = await crm.add(request(sms("m1"), hostname=hostname))

    assert response.outcome == pb.LOG_OUTCOME_CREATED


async def test_the_ui_host_callers_store_names_the_same_account_as_its_rest_host(crm: Harness) -> None:
    first = await crm.add(
        request(sms("m1", "2026-11-20T15:00:00Z", "one"), hostname="1234567.app.netsuite.com")
    )
    second = await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two"), hostname=ACCOUNT_HOST))

    # One account, so one digest: the second message is appended to the first's phone call.
    assert second.outcome == pb.LOG_OUTCOME_APPENDED
    assert second.log_id == first.log_id
    assert len(crm.fake.calls("POST", "/phonecall$")) == 1


async def test_a_lost_create_is_found_by_a_suiteql_query_of_the_contacts_calls(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(
        FakeNetSuite(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS)
    ) as crm:
        response = await lose_create_then_retry(crm, request(sms("m1")), "POST", "/phonecall$")
        (made,) = crm.fake.record_ids()
        (query,) = crm.fake.calls("POST", "/query/v1/suiteql")
    assert response.log_id == made
    assert query.headers["prefer"] == "transient"
    assert query.body["q"].startswith(
        "SELECT id, message FROM phonecall WHERE contact = 42 AND createddate >= "
    )


async def test_a_create_answered_without_location_is_a_bad_response(crm: Harness) -> None:
    crm.fake.inject(Fault(status=204, method="POST", path_pattern="/phonecall$"))

    status = await crm.add_error(request(sms("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


async def test_the_concurrency_limit_is_rate_limited(make_harness: Callable[..., Any]) -> None:
    fake = FakeNetSuite(concurrency_limit=1)
    fake.reply_delay = 0.3
    async with make_harness(fake, AUTH, MESSAGELOG_CRM_MAX_ATTEMPTS="1") as crm:
        results = await asyncio.gather(
            crm.add(request(sms("m1"), contact_id="42")),
            crm.add(request(sms("m2"), contact_id="43")),
            return_exceptions=True,
        )

    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(failures) == 1
    assert failures[0].code() == grpc.StatusCode.UNAVAILABLE
    assert len(fake.record_ids()) == 1
