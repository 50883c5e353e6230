"""Zoho CRM's quirks; the shared scenarios are in test_contract.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.fakes.base import Fault
from tests.fakes.zoho import FakeZoho
from tests.helpers import add_request, sms

AUTH = "Zoho-oauthtoken zoho-token"
CONTACT = "5725767000000202001"
API_DOMAIN_FIELD = "user.platform_additional_info[api_domain]"


def zoho_request(
    message_id: str = "m1", *, api_domain: str | None = "https://www.zohoapis.com", contact_type: str = ""
) -> Any:
    request = add_request(
        "zoho",
        sms(message_id, "2026-11-20T15:00:00Z", "Call me <later>"),
        hostname="",
        contact_id=CONTACT,
        user_info={} if api_domain is None else {"api_domain": api_domain},
    )
    if contact_type:
        request.contact.type = contact_type
    return request


async def test_create_posts_a_plain_text_note_on_the_contact(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        response = await crm.add(zoho_request())

        (sent,) = crm.fake.requests
    assert (sent.method, sent.path) == ("POST", f"/crm/v8/Contacts/{CONTACT}/Notes")
    assert sent.headers["authorization"] == AUTH
    (note,) = sent.body["data"]
    assert set(note) == {"Note_Title", "Note_Content"}
    assert note["Note_Title"] == "SMS conversation with Jane Doe - 2026-11-20"
    assert "    Call me <later>" in note["Note_Content"]
    assert response.log_id in crm.fake.record_ids()


async def test_a_lead_gets_the_note_under_leads(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        await crm.add(zoho_request(contact_type="Lead"))

        assert [r.path for r in crm.fake.requests] == [f"/crm/v8/Leads/{CONTACT}/Notes"]


async def test_append_puts_the_whole_note(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        first = await crm.add(zoho_request("m1"))
        await crm.add(zoho_request("m2"))

        assert len(crm.fake.requests) == 2  # one call per create, one per append
        (put,) = crm.fake.calls("PUT")
    assert put.path == f"/crm/v8/Notes/{first.log_id}"
    assert "Conversation (2 messages)" in put.body["data"][0]["Note_Content"]


@pytest.mark.parametrize(
    "api_domain",
    [
        "https://www.zohoapis.com.evil.example",
        "https://evil.example/www.zohoapis.com",
        "http://www.zohoapis.com",
        "https://accounts.zoho.com",
    ],
)
async def test_an_api_domain_off_the_allow_list_is_refused_before_any_call(
    make_harness: Callable[..., Any], api_domain: str
) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        status = await crm.add_error(zoho_request(api_domain=api_domain))

        assert crm.fake.requests == []
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {API_DOMAIN_FIELD}


async def test_a_missing_api_domain_is_an_invalid_request(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        status = await crm.add_error(zoho_request(api_domain=None))

        assert crm.fake.requests == []
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "INVALID_REQUEST"
    assert status.fields == {API_DOMAIN_FIELD}


async def test_a_record_level_error_in_a_success_reply_is_a_rejection(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        crm.fake.inject(
            Fault(
                status=202,
                body={"data": [{"code": "INVALID_DATA", "details": {}, "message": "x", "status": "error"}]},
            )
        )
        status = await crm.add_error(zoho_request())

        assert crm.fake.record_ids() == []
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "CRM_REJECTED"


async def test_exhausted_api_credits_are_unavailable_rate_limited(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(credits=2), AUTH) as crm:
        await crm.add(zoho_request("m1"))
        status = await crm.add_error(zoho_request("m2"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "429"
