"""HubSpot's quirks; the shared scenarios are in test_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx

from service.adapters.base import CrmCall
from service.adapters.hubspot import HubspotAdapter
from service.config import CrmSettings
from service.model import ContactInfo, UserInfo
from tests.fakes.base import Fault
from tests.fakes.hubspot import TEN_SECONDLY_ROLLING, FakeHubspot
from tests.helpers import add_request, sms

AUTH = "Bearer hs-token"
COMMUNICATIONS = "/crm/v3/objects/communications"
DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def hubspot_request(
    message_id: str = "m1", at: str = "15:00", text: str = "Hi <b>there</b>", **kw: Any
) -> Any:
    kw.setdefault("hostname", "")
    return add_request("hubspot", sms(message_id, f"{DAY}T{at}:00Z", text), **kw)


async def test_create_sends_an_sms_communication_owned_by_the_users_owner(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        response = await crm.add(hubspot_request(extras={"deals": "77"}))

        owner, sent = crm.fake.requests
    # The caller's user id 1001 is a HubSpot user id; the owner id is looked up by it.
    assert (owner.method, owner.path, owner.query) == ("GET", "/crm/v3/owners/1001", {"idProperty": "userId"})
    assert (sent.method, sent.path) == ("POST", COMMUNICATIONS)
    assert sent.headers["authorization"] == AUTH
    properties = sent.body["properties"]
    assert properties["hs_communication_channel_type"] == "SMS"
    assert properties["hs_communication_logged_from"] == "CRM"
    assert properties["hs_timestamp"] == f"{DAY}T15:00:00Z"
    assert properties["hubspot_owner_id"] == "9101"
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in properties["hs_communication_body"]
    assert sent.body["associations"] == [
        {"to": {"id": "42"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}]},
        {"to": {"id": "77"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 85}]},
    ]
    assert response.log_id in crm.fake.record_ids()
    (identity,) = crm.fake.identity_lookups
    assert identity.path == "/account-info/v3/details"


async def test_the_owner_is_looked_up_once_per_user(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        await crm.add(hubspot_request("m1", contact_id="42"))
        await crm.add(hubspot_request("m2", contact_id="43"))

        assert len(crm.fake.calls("GET", r"^/crm/v3/owners/")) == 1
        assert len(crm.fake.calls("POST", f"^{COMMUNICATIONS}$")) == 2


async def test_a_user_who_is_no_owner_or_has_no_numeric_id_sets_no_owner(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        await crm.add(hubspot_request("m1", user_id="2002"))
        await crm.add(hubspot_request("m2", user_id="alice@example.com", contact_id="43"))

        first, second = crm.fake.calls("POST", f"^{COMMUNICATIONS}$")
        # Only the numeric id was looked up; it names no owner (404).
        assert [r.path for r in crm.fake.calls("GET", r"^/crm/v3/owners/")] == ["/crm/v3/owners/2002"]
    assert "hubspot_owner_id" not in first.body["properties"]
    assert "hubspot_owner_id" not in second.body["properties"]


async def test_append_reads_the_body_then_patches_the_body_and_time(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        first = await crm.add(hubspot_request("m1"))
        before = len(crm.fake.requests)
        await crm.add(hubspot_request("m2", "15:05"))

        read, patch = crm.fake.requests[before:]
    assert (read.method, read.path) == ("GET", f"{COMMUNICATIONS}/{first.log_id}")
    assert read.query == {"properties": "hs_communication_body"}
    assert (patch.method, patch.path) == ("PATCH", f"{COMMUNICATIONS}/{first.log_id}")
    assert set(patch.body) == {"properties"}
    assert set(patch.body["properties"]) == {"hs_communication_body", "hs_timestamp"}
    assert "Conversation (2 messages)" in patch.body["properties"]["hs_communication_body"]


async def test_an_earlier_message_arriving_later_moves_the_timestamp_back(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        created = await crm.add(hubspot_request("m2", "16:30"))
        await crm.add(hubspot_request("m1", "15:10"))

        properties = crm.fake.communications[created.log_id]["properties"]
    assert properties["hs_timestamp"] == f"{DAY}T15:10:00Z"


async def test_a_lost_create_is_found_by_search_not_made_twice(make_harness: Callable[..., Any]) -> None:
    settle = 0.3
    async with make_harness(
        FakeHubspot(), AUTH, MESSAGELOG_CRM_TIMEOUT="1", MESSAGELOG_CREATE_SETTLE_SECONDS=str(settle)
    ) as crm:
        crm.fake.inject(
            Fault(drop_connection=True, method="POST", path_pattern=f"^{COMMUNICATIONS}$", after_effect=True)
        )
        await crm.add_error(hubspot_request("m1"))
        await asyncio.sleep(settle)
        retry = await crm.add(hubspot_request("m1"))

        (search,) = crm.fake.calls("POST", "/search$")
    assert crm.fake.record_ids() == [retry.log_id]
    (group,) = search.body["filterGroups"]
    contact, created = group["filters"]
    assert contact == {"propertyName": "associations.contact", "operator": "EQ", "value": "42"}
    assert (created["propertyName"], created["operator"]) == ("hs_createdate", "GTE")
    assert int(created["value"]) < datetime.now(UTC).timestamp() * 1000
    assert search.body["properties"] == ["hs_communication_body"]


async def test_a_non_numeric_contact_or_deal_id_is_refused_before_any_call(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        bad_contact = await crm.add_error(hubspot_request(contact_id="jane@example.com"))
        bad_deal = await crm.add_error(hubspot_request(extras={"deals": "big-one"}))

        assert crm.fake.requests == []
    assert bad_contact.code == bad_deal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_contact.fields == {"contact.id"}
    assert bad_deal.fields == {"additional_submission[deals]"}


async def test_the_ten_secondly_policy_in_a_429_body_is_a_ten_second_retry(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH, MESSAGELOG_CRM_MAX_ATTEMPTS="1") as crm:
        crm.fake.inject(
            Fault(
                status=429,
                body={"status": "error", "message": "limit", "policyName": TEN_SECONDLY_ROLLING},
                path_pattern=f"^{COMMUNICATIONS}$",
            )
        )
        status = await crm.add_error(hubspot_request("m1"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "429"
    assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 10


async def test_hubspots_own_rate_limit_is_unavailable_rate_limited(make_harness: Callable[..., Any]) -> None:
    # Three calls pass: the account, the owner and the create; the append's read is over the limit.
    async with make_harness(FakeHubspot(per_interval=3), AUTH) as crm:
        await crm.add(hubspot_request("m1"))
        status = await crm.add_error(hubspot_request("m2", "15:05"))

        assert crm.fake.calls("PATCH") == []
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 10


async def test_the_host_is_api_hubapi_com_whatever_user_hostname_says() -> None:
    async with httpx.AsyncClient() as http:
        adapter = HubspotAdapter(http=http, settings=CrmSettings(base_url=None, timeout_seconds=1))
        call = CrmCall(
            user=UserInfo(id="1", hostname="evil.example.com", zone=UTC, zone_label="UTC", name=""),
            contact=ContactInfo("42", "", "", "", "", ""),
            authorization=AUTH,
            extras={},
        )

        assert adapter.base_url(call) == "https://api.hubapi.com"
