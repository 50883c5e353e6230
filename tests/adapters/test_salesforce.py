"""Salesforce's quirks; the shared scenarios are in test_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.fakes.base import FakeRequest, Fault
from tests.fakes.salesforce import FakeSalesforce
from tests.helpers import add_request, sms

AUTH = "Bearer sf-token"
CONTACT = "003Ak00000AbCdEIAV"
LEAD = "00QAk00000LeAd1IAB"
OWNER = "005Ak00000XyZ12IAB"
OPPORTUNITY = "006Ak00000Opp01IAA"
ACCOUNT = "001Ak00000Acc01IAA"
INSTANCE_FIELD = "user.platform_additional_info[instance_url]"
TASKS = "/services/data/v62.0/sobjects/Task"


def sf_request(
    message_id: str = "m1",
    text: str = "See you <soon>",
    *,
    instance_url: str = "https://acme.my.salesforce.com",
    contact_id: str = CONTACT,
    extras: dict[str, str] | None = None,
    at: str = "2026-11-20T15:00:00Z",
) -> Any:
    return add_request(
        "salesforce",
        sms(message_id, at, text),
        hostname="",
        user_id=OWNER,
        contact_id=contact_id,
        extras=extras,
        user_info={"instance_url": instance_url},
    )


async def test_create_posts_a_completed_task_on_the_contact(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        response = await crm.add(sf_request(extras={"opportunity": OPPORTUNITY, "account": ACCOUNT}))

        (sent,) = crm.fake.requests
    assert (sent.method, sent.path) == ("POST", TASKS)
    assert sent.headers["authorization"] == AUTH
    description = sent.body.pop("Description")
    assert sent.body == {
        "Subject": "SMS conversation with Jane Doe - 2026-11-20",
        "WhoId": CONTACT,
        "WhatId": OPPORTUNITY,
        "ActivityDate": "2026-11-20",
        "Status": "Completed",
        "TaskSubtype": "Task",
        "OwnerId": OWNER,
    }
    assert "    See you <soon>" in description
    assert response.log_id in crm.fake.record_ids()


async def test_append_reads_the_description_then_patches_subject_and_description_only(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        first = await crm.add(sf_request("m1"))
        appended = await crm.add(sf_request("m2", at="2026-11-20T16:00:00Z"))

        _, read, patch = crm.fake.requests  # one call per create, two per append
    assert appended.log_id == first.log_id
    assert (read.method, read.path, read.query) == (
        "GET",
        f"{TASKS}/{first.log_id}",
        {"fields": "Description"},
    )
    assert (patch.method, patch.path) == ("PATCH", f"{TASKS}/{first.log_id}")
    assert set(patch.body) == {"Subject", "Description"}
    assert "Conversation (2 messages)" in patch.body["Description"]


async def test_a_persons_lines_in_the_description_stay_above_the_next_message(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        first = await crm.add(sf_request("m1", "one"))
        crm.fake.tasks[first.log_id]["Description"] += "\nCalled back, all settled."
        await crm.add(sf_request("m2", "two", at="2026-11-20T16:00:00Z"))

        description = crm.fake.record_body(first.log_id)
    assert description.index("all settled") < description.index("two")


async def test_a_lost_create_is_found_by_a_soql_query_of_the_contacts_recent_tasks(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(
        FakeSalesforce(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS)
    ) as crm:
        response = await lose_create_then_retry(crm, sf_request("m1"), "POST", TASKS)
        (made,) = crm.fake.record_ids()
        (query,) = crm.fake.calls("GET", r"/query$")
    assert response.log_id == made and crm.fake.record_ids() == [made]
    soql = query.query["q"]
    # Description is a long text area, which SOQL cannot filter: the marker is matched here.
    assert soql.startswith("SELECT Id, Description FROM Task WHERE ")
    assert f"WhoId = '{CONTACT}' AND CreatedDate >= " in soql
    assert "Description" not in soql.split("WHERE")[1]


async def test_the_fake_refuses_a_soql_filter_on_the_description() -> None:
    soql = "SELECT Id FROM Task WHERE Description = 'x'"
    answer = await FakeSalesforce().handle(
        FakeRequest("GET", "/services/data/v62.0/query", {"q": soql}, {"authorization": AUTH}, None)
    )

    assert answer.status == 400
    assert answer.body[0]["errorCode"] == "INVALID_FIELD"


@pytest.mark.parametrize(
    ("extras", "contact_id", "what"),
    [
        ({"account": ACCOUNT}, CONTACT, ACCOUNT),
        ({"opportunity": OPPORTUNITY}, LEAD, None),
        ({}, CONTACT, None),
    ],
)
async def test_what_id_comes_from_account_and_never_goes_on_a_lead(
    make_harness: Callable[..., Any], extras: dict[str, str], contact_id: str, what: str | None
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        await crm.add(sf_request(extras=extras, contact_id=contact_id))

        (sent,) = crm.fake.requests
    assert sent.body.get("WhatId") == what
    assert sent.body["WhoId"] == contact_id


async def test_a_sandbox_instance_url_is_allowed(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        response = await crm.add(sf_request(instance_url="https://acme--uat.sandbox.my.salesforce.com"))

    assert response.log_id in crm.fake.record_ids()


@pytest.mark.parametrize("partition", ["develop", "free", "scratch", "demo", "patch", "trailblaze"])
async def test_partitioned_my_domain_hosts_are_allowed(
    make_harness: Callable[..., Any], partition: str
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        response = await crm.add(sf_request(instance_url=f"https://acme.{partition}.my.salesforce.com"))

    assert response.log_id in crm.fake.record_ids()


@pytest.mark.parametrize(
    "instance_url",
    [
        "https://acme.my.salesforce.com.evil.example",
        "https://evil.example/acme.my.salesforce.com",
        "http://acme.my.salesforce.com",
        "https://login.salesforce.com",
    ],
)
async def test_an_instance_url_off_the_allow_list_is_refused_before_any_call(
    make_harness: Callable[..., Any], instance_url: str
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        status = await crm.add_error(sf_request(instance_url=instance_url))

        assert crm.fake.requests == []
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {INSTANCE_FIELD}


async def test_the_org_api_limit_403_is_unavailable_rate_limited(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeSalesforce(daily_requests=2), AUTH) as crm:
        await crm.add(sf_request("m1"))
        status = await crm.add_error(sf_request("m2", at="2026-11-20T16:00:00Z"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "403"
    # The org's allowance is counted over 24 hours: no retry seconds later, and a wait worth telling.
    assert len(crm.fake.calls("GET", "/sobjects/Task/")) == 1
    assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 900


async def test_any_other_403_is_an_auth_failure(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        crm.fake.inject(
            Fault(
                status=403,
                body=[{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY", "fields": []}],
            )
        )
        status = await crm.add_error(sf_request())

    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "CRM_AUTH_FAILED"


async def test_a_digest_longer_than_32000_characters_keeps_its_start_and_says_it_was_cut(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeSalesforce(), AUTH) as crm:
        for i in range(5):
            text = f"message {i} " + "x" * 9_000
            response = await crm.add(sf_request(f"m{i}", text, at=f"2026-11-20T15:0{i}:00Z"))

        description = crm.fake.record_body(response.log_id)
    assert len(description) == 32_000
    assert "message 0" in description and "message 4" not in description
    assert description.endswith("[Cut at Salesforce's 32,000-character limit for task comments.]")
