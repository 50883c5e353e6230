"""Clio's own quirks: the Communication payload, direction-aware parties, regions, matters, and
appends written with IF-MATCH, so a person's edit is kept without reading the record each time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from tests.adapters.direct import account_key
from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.base import FakeRequest, Fault
from tests.fakes.clio import FakeClio
from tests.helpers import add_request, sms

AUTH = "Bearer clio-token"


@pytest.fixture
async def clio(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeClio(), AUTH) as harness:
        yield harness


def request(message: pb.Message, **kw: Any) -> Any:
    kw.setdefault("hostname", "app.clio.com")
    kw.setdefault("extras", {"matters": "9001"})
    return add_request("clio", message, **kw)


async def test_create_sends_one_phone_communication_and_an_append_one_patch(clio: Harness) -> None:
    created = await clio.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    create_calls = list(clio.fake.requests)
    await clio.add(request(sms("m2", "2026-11-20T15:05:00Z", "second")))
    append_calls = clio.fake.requests[len(create_calls) :]

    assert [(r.method, r.path) for r in create_calls] == [("POST", "/api/v4/communications.json")]
    # One who_am_i names both the firm's account and the user shown in the record.
    (identity,) = clio.fake.identity_lookups
    assert identity.query == {"fields": "id,name,account{id}"}
    assert all(r.headers["authorization"] == AUTH for r in clio.fake.requests)
    data = create_calls[0].body["data"]
    assert {k: v for k, v in data.items() if k not in ("subject", "body")} == {
        "type": "PhoneCommunication",
        "date": "2026-11-20",
        "received_at": "2026-11-20T15:00:00Z",
        "senders": [{"id": 42, "type": "Contact"}],
        "receivers": [{"id": 1001, "type": "User"}],
        "matter": {"id": 9001},
    }
    # The account and the user's name are looked up once per credential, not per message.
    assert [(r.method, r.path) for r in append_calls] == [
        ("PATCH", f"/api/v4/communications/{created.log_id}.json")
    ]
    assert set(append_calls[0].body["data"]) == {"subject", "body"}
    body = clio.fake.record_body(created.log_id)
    assert "Alice Agent" in body and body.index("first") < body.index("second")


async def test_an_outbound_fax_is_sent_by_the_user_to_the_contact(clio: Harness) -> None:
    fax = sms("fax1", kind=pb.MESSAGE_TYPE_FAX, text="", inbound=False)

    await clio.add(request(fax, fax_doc_link="https://media.example.com/fax1.pdf", user_name="Al"))

    (create,) = clio.fake.calls("POST")
    assert create.body["data"]["senders"] == [{"id": 1001, "type": "User"}]
    assert create.body["data"]["receivers"] == [{"id": 42, "type": "Contact"}]
    assert clio.fake.calls("GET") == []  # user.name was given: only the identity lookup read


async def test_a_voicemail_is_sent_by_the_contact_to_the_user(clio: Harness) -> None:
    voicemail = sms("vm1", kind=pb.MESSAGE_TYPE_VOICEMAIL, text="")

    await clio.add(request(voicemail, recording_link="https://media.example.com/vm1.mp3"))

    (create,) = clio.fake.calls("POST")
    assert create.body["data"]["senders"] == [{"id": 42, "type": "Contact"}]
    assert create.body["data"]["receivers"] == [{"id": 1001, "type": "User"}]


@pytest.mark.parametrize("hostname", ["eu.app.clio.com", "ca.app.clio.com", "au.app.clio.com"])
async def test_every_region_is_allowed(clio: Harness, hostname: str) -> None:
    response = await clio.add(request(sms("m1"), hostname=hostname, extras={}))

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert "matter" not in clio.fake.calls("POST")[0].body["data"]


@pytest.mark.parametrize("hostname", ["evil.example.com", "app.clio.com.evil.example", "api.clio.com"])
async def test_a_host_that_is_not_clio_manage_is_refused_before_any_request(
    clio: Harness, hostname: str
) -> None:
    status = await clio.add_error(request(sms("m1"), hostname=hostname))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert status.fields == {"user.hostname"}
    assert clio.fake.requests == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extras": {"matters": "M-1"}}, "additional_submission[matters]"),
        ({"contact_id": "abc"}, "contact.id"),
        ({"user_id": "u-1"}, "user.id"),
    ],
)
async def test_ids_clio_cannot_take_are_refused_before_any_request(
    clio: Harness, overrides: dict[str, Any], field: str
) -> None:
    status = await clio.add_error(request(sms("m1"), **overrides))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {field}
    assert clio.fake.requests == []


async def test_clio_rate_limit_headers_give_the_retry_delay(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeClio(limit_per_minute=2), AUTH) as clio:
        await clio.add(request(sms("m1"), user_name="Al"))

        status = await clio.add_error(request(sms("m2", "2026-11-20T15:01:00Z"), user_name="Al"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.retry_info is not None and 0 < status.retry_info.retry_delay.seconds <= 60


def fake_clio(h: Harness) -> FakeClio:
    assert isinstance(h.fake, FakeClio)
    return h.fake


async def log(h: Harness, message_id: str, minute: int, text: str) -> pb.AddMessageLogResponse:
    return await h.add(request(sms(message_id, f"2026-11-20T15:{minute:02d}:00Z", text), user_name="Al"))


def sent_since(h: Harness, before: int) -> list[FakeRequest]:
    return h.fake.requests[before:]


def etag(h: Harness, log_id: str) -> str:
    return str(fake_clio(h).communications[int(log_id)]["etag"])


async def test_an_append_is_one_patch_expecting_the_etag_of_our_last_write(clio: Harness) -> None:
    created = await log(clio, "m1", 0, "first message")
    for minute, message_id in enumerate(("m2", "m3"), start=1):
        expected = etag(clio, created.log_id)
        before = len(clio.fake.requests)

        await log(clio, message_id, minute, f"message {minute}")

        (append,) = sent_since(clio, before)
        assert (append.method, append.headers["if-match"]) == ("PATCH", expected)
        assert etag(clio, created.log_id) != expected
    body = clio.fake.record_body(created.log_id)
    assert body.index("first message") < body.index("message 1") < body.index("message 2")


async def test_a_persons_edit_is_found_by_the_refused_write_and_kept(clio: Harness) -> None:
    created = await log(clio, "m1", 0, "first message")
    await log(clio, "m2", 1, "second message")
    edited = "Customer called back, deal agreed. Lines below trimmed by Alice."
    fake_clio(clio).edit_record(created.log_id, edited)
    before = len(clio.fake.requests)

    with capture_logs() as logs:
        response = await log(clio, "m3", 2, "third message")

    assert response.outcome == pb.LOG_OUTCOME_APPENDED
    path = f"/api/v4/communications/{created.log_id}.json"
    refused, read, written = sent_since(clio, before)
    assert (refused.method, refused.path) == ("PATCH", path)
    assert (read.method, read.path, read.query) == ("GET", path, {"fields": "id,etag,body"})
    assert (written.method, written.path) == ("PATCH", path)
    assert written.headers["if-match"] != refused.headers["if-match"]
    body = clio.fake.record_body(created.log_id)
    assert body.startswith(edited)
    assert "Later messages (1 message)" in body and "third message" in body
    assert "first message" not in body  # the person removed it; it is not put back
    assert [e["event"] for e in logs].count("record_edit_kept") == 1

    # The edit stays kept, and the next append is one write again.
    before = len(clio.fake.requests)
    await log(clio, "m4", 3, "fourth message")
    assert [r.method for r in sent_since(clio, before)] == ["PATCH"]
    body = clio.fake.record_body(created.log_id)
    assert body.startswith(edited) and body.index("third message") < body.index("fourth message")


async def test_a_record_written_without_a_known_etag_is_read_before_the_first_append(clio: Harness) -> None:
    # A create reply without an etag, as for a digest written before etags were kept.
    clio.fake.inject(Fault(status=201, body={"data": {"id": 7001}}, method="POST", after_effect=True))
    created = await log(clio, "m1", 0, "first message")
    before = len(clio.fake.requests)

    await log(clio, "m2", 1, "second message")
    await log(clio, "m3", 2, "third message")

    read, written, next_append = sent_since(clio, before)
    assert (read.method, written.method, next_append.method) == ("GET", "PATCH", "PATCH")
    assert "if-match" in written.headers and "if-match" in next_append.headers
    assert "Conversation (3 messages)" in clio.fake.record_body(created.log_id)


async def test_our_own_write_whose_answer_was_lost_is_not_taken_for_an_edit(clio: Harness) -> None:
    created = await log(clio, "m1", 0, "first message")
    # The PATCH lands but its answer is a 500: the repeat finds a newer etag, our own write's.
    clio.fake.inject(Fault(status=500, body={"error": "boom"}, method="PATCH", after_effect=True))
    before = len(clio.fake.requests)

    with capture_logs() as logs:
        response = await log(clio, "m2", 1, "second message")

    assert response.outcome == pb.LOG_OUTCOME_APPENDED
    assert [(r.method, r.path.endswith(".json")) for r in sent_since(clio, before)] == [
        ("PATCH", True),
        ("PATCH", True),
        ("GET", True),
        ("PATCH", True),
    ]
    assert "record_edit_kept" not in [e["event"] for e in logs]
    body = clio.fake.record_body(created.log_id)
    assert body.count("second message") == 1 and "Conversation (2 messages)" in body


async def test_a_record_that_changes_again_while_written_is_busy_and_loses_nothing(clio: Harness) -> None:
    created = await log(clio, "m1", 0, "first message")
    clio.fake.inject(
        Fault(
            status=412, body={"error": {"type": "PreconditionFailed", "message": "changed"}}, method="PATCH"
        ),
        times=2,
    )

    status = await clio.add_error(
        request(sms("m2", "2026-11-20T15:01:00Z", "second message"), user_name="Al")
    )

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "DIGEST_BUSY"
    assert "second message" not in clio.fake.record_body(created.log_id)
    retry = await log(clio, "m2", 1, "second message")
    assert retry.outcome == pb.LOG_OUTCOME_APPENDED
    assert clio.fake.record_body(created.log_id).count("second message") == 1


async def test_the_account_is_the_firm_who_am_i_names() -> None:
    # Two firms' users on one regional host are two accounts: who_am_i's account{id} (Clio's
    # spec: User.account, Account_base.id), not the shared host, names them.
    firm_a, firm_b = FakeClio(), FakeClio()
    firm_b.user = {**firm_b.user, "account": {"id": 5502}}

    keys = [await account_key(fake, "clio", AUTH, "app.clio.com") for fake in (firm_a, firm_b)]

    assert keys == ["clio:5501", "clio:5502"]
    (lookup,) = firm_b.identity_lookups
    assert (lookup.path, lookup.query) == ("/api/v4/users/who_am_i.json", {"fields": "id,name,account{id}"})


async def test_a_lost_create_is_found_among_the_contacts_new_communications(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeClio(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS)) as clio:
        lost = request(sms("m1", text="first words"), user_name="Al")
        retry = await lose_create_then_retry(clio, lost, "POST", r"communications\.json$")
        (log_id,) = clio.fake.record_ids()

    create, find, written = clio.fake.requests
    assert create.method == "POST"
    assert (find.method, find.path) == ("GET", "/api/v4/communications.json")
    created_since = find.query.pop("created_since")
    assert find.query == {"contact_id": "42", "fields": "id,etag,body", "order": "id(desc)", "limit": "200"}
    assert created_since.endswith("Z") and created_since < clio.fake.communications[int(log_id)]["created_at"]
    assert (written.method, written.path) == ("PATCH", f"/api/v4/communications/{log_id}.json")
    assert retry.log_id == log_id and clio.fake.record_ids() == [log_id]
    assert clio.fake.record_body(log_id).count("first words") == 1


async def test_a_create_that_never_landed_is_made_once_the_search_finds_nothing(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakeClio(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS)) as clio:
        clio.fake.inject(Fault(status=500, body={"error": "lost"}, method="POST"))
        await clio.add_error(request(sms("m1"), user_name="Al"))
        await asyncio.sleep(SETTLE_SECONDS)

        retry = await clio.add(request(sms("m1"), user_name="Al"))

    assert [r.method for r in clio.fake.requests] == ["POST", "GET", "POST"]
    assert clio.fake.record_ids() == [retry.log_id]
