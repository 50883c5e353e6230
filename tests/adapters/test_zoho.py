"""Zoho CRM's quirks; the shared scenarios are in test_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.fakes.base import Fault
from tests.fakes.zoho import FakeZoho
from tests.helpers import add_request, sms

AUTH = "Zoho-oauthtoken zoho-token"
CONTACT = "5725767000000202001"
API_DOMAIN_FIELD = "user.platform_additional_info[api_domain]"
DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def zoho_request(
    message_id: str = "m1",
    *,
    at: str = "15:00",
    conversation: str = "conv-1",
    api_domain: str | None = "https://www.zohoapis.com",
    contact_type: str = "",
) -> Any:
    request = add_request(
        "zoho",
        sms(message_id, f"{DAY}T{at}:00Z", "Call me <later>", conversation=conversation),
        hostname="",
        contact_id=CONTACT,
        user_info={} if api_domain is None else {"api_domain": api_domain},
    )
    if contact_type:
        request.contact.type = contact_type
    return request


async def test_create_posts_a_plain_text_note_with_its_parent(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        response = await crm.add(zoho_request())

        (sent,) = crm.fake.requests
    assert (sent.method, sent.path) == ("POST", "/crm/v8/Notes")
    assert sent.headers["authorization"] == AUTH
    (note,) = sent.body["data"]
    assert set(note) == {"Note_Title", "Note_Content", "Parent_Id"}
    assert note["Parent_Id"] == {"id": CONTACT, "module": {"api_name": "Contacts"}}
    assert note["Note_Title"] == f"SMS conversation with Jane Doe - {DAY}"
    assert "    Call me <later>" in note["Note_Content"]
    assert response.log_id in crm.fake.record_ids()
    (identity,) = crm.fake.identity_lookups
    assert identity.path == "/crm/v8/org"


async def test_a_lead_gets_the_note_under_leads(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        response = await crm.add(zoho_request(contact_type="Lead"))

        (sent,) = crm.fake.requests
    assert sent.body["data"][0]["Parent_Id"] == {"id": CONTACT, "module": {"api_name": "Leads"}}
    assert crm.fake.notes[response.log_id]["Parent_Id"]["module"] == {"api_name": "Leads"}


async def test_append_reads_the_note_then_puts_it_whole(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeZoho(), AUTH) as crm:
        first = await crm.add(zoho_request("m1"))
        await crm.add(zoho_request("m2", at="15:05"))

        read, put = crm.fake.requests[1:]
    assert (read.method, read.path, read.query) == (
        "GET",
        f"/crm/v8/Notes/{first.log_id}",
        {"fields": "Note_Content"},
    )
    assert (put.method, put.path) == ("PUT", f"/crm/v8/Notes/{first.log_id}")
    (note,) = put.body["data"]
    assert set(note) == {"Note_Title", "Note_Content"}
    assert "Conversation (2 messages)" in note["Note_Content"]


async def test_a_lost_create_is_found_among_the_newest_notes(make_harness: Callable[..., Any]) -> None:
    fake = FakeZoho()
    settle = 0.3
    async with make_harness(
        fake, AUTH, MESSAGELOG_CRM_TIMEOUT="1", MESSAGELOG_CREATE_SETTLE_SECONDS=str(settle)
    ) as crm:
        await crm.add(zoho_request("m0", conversation="other"))  # an older note of the organization
        fake.inject(
            Fault(drop_connection=True, method="POST", path_pattern=r"^/crm/v8/Notes$", after_effect=True)
        )
        await crm.add_error(zoho_request("m1"))
        await asyncio.sleep(settle)
        retry = await crm.add(zoho_request("m1"))

        (find,) = fake.calls("GET", r"^/crm/v8/Notes$")
    assert len(fake.notes) == 2
    assert retry.log_id in fake.notes
    assert find.query == {
        "fields": "Note_Content,Created_Time",
        "sort_by": "Created_Time",
        "sort_order": "desc",
        "per_page": "200",
        "page": "1",
    }


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
        status = await crm.add_error(zoho_request("m2", at="15:05"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "429"
