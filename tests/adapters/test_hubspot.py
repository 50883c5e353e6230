"""HubSpot's quirks; the shared scenarios are in test_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import grpc
import httpx

from service.adapters.base import CrmCall
from service.adapters.hubspot import HubspotAdapter
from service.config import CrmSettings
from service.model import ContactInfo, UserInfo
from tests.fakes.hubspot import FakeHubspot
from tests.helpers import add_request, sms

AUTH = "Bearer hs-token"


def hubspot_request(message_id: str = "m1", **kw: Any) -> Any:
    kw.setdefault("hostname", "")
    return add_request("hubspot", sms(message_id, "2026-11-20T15:00:00Z", "Hi <b>there</b>"), **kw)


async def test_create_sends_an_sms_communication_associated_with_contact_and_deal(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        response = await crm.add(hubspot_request(extras={"deals": "77"}))

        (sent,) = crm.fake.requests
    assert (sent.method, sent.path) == ("POST", "/crm/v3/objects/communications")
    assert sent.headers["authorization"] == AUTH
    properties = sent.body["properties"]
    assert properties["hs_communication_channel_type"] == "SMS"
    assert properties["hs_communication_logged_from"] == "CRM"
    assert properties["hs_timestamp"] == "2026-11-20T15:00:00Z"
    assert properties["hubspot_owner_id"] == "1001"
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in properties["hs_communication_body"]
    assert sent.body["associations"] == [
        {"to": {"id": "42"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}]},
        {"to": {"id": "77"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 85}]},
    ]
    assert response.log_id in crm.fake.record_ids()


async def test_append_patches_only_the_body(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        first = await crm.add(hubspot_request("m1"))
        await crm.add(hubspot_request("m2"))

        assert len(crm.fake.requests) == 2  # one call per create, one per append
        (patch,) = crm.fake.calls("PATCH")
    assert patch.path == f"/crm/v3/objects/communications/{first.log_id}"
    assert set(patch.body) == {"properties"}
    assert set(patch.body["properties"]) == {"hs_communication_body"}
    assert "Conversation (2 messages)" in patch.body["properties"]["hs_communication_body"]


async def test_a_non_numeric_user_id_sets_no_owner(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeHubspot(), AUTH) as crm:
        await crm.add(hubspot_request(user_id="alice@example.com"))

        (sent,) = crm.fake.calls("POST")
    assert "hubspot_owner_id" not in sent.body["properties"]


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


async def test_hubspots_own_rate_limit_is_unavailable_rate_limited(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeHubspot(per_interval=2), AUTH) as crm:
        await crm.add(hubspot_request("m1"))
        status = await crm.add_error(hubspot_request("m2"))

        assert crm.fake.calls("PATCH") != []
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "429"


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
