"""The contract every adapter keeps, run through the real server against each CRM's fake.

Scenarios: create, append in time order, duplicate, voicemail and fax, 401, 404, 429 with
Retry-After, 5xx, timeout, malformed reply, and a failed write that must lose nothing; a person's
edit survives the next append; a create the CRM applied but never answered is not made twice; the
account is the one the CRM names, and a refused credential learns nothing; the fake refuses what
the real API documents as refused. Where an adapter declares that its CRM cannot do a thing (read
a record, find one it created), the scenario checks the documented limit instead.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

from service.adapters.registry import adapter_class
from tests.adapters.cases import CASES, CrmCase
from tests.conftest import Harness
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.helpers import add_request, sms, update_request


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> CrmCase:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def crm(case: CrmCase, make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    # One attempt per request: these scenarios check how one CRM reply maps to a status;
    # retries have their own tests.
    async with make_harness(
        case.make_fake(), case.auth, MESSAGELOG_CRM_TIMEOUT="1", MESSAGELOG_CRM_MAX_ATTEMPTS="1"
    ) as harness:
        yield harness


def request_for(case: CrmCase, message: pb.Message, **kw: Any) -> service_pb.AddMessageLogRequest:
    return add_request(
        case.crm,
        message,
        hostname=case.hostname,
        user_id=case.user_id,
        contact_id=case.contact_id,
        extras=case.extras,
        user_info=case.user_info,
        **kw,
    )


def shown(case: CrmCase, text: str) -> str:
    return html.escape(text) if case.html else text


def write_calls(crm: Harness) -> int:
    return len([r for r in crm.fake.calls(path_pattern=crm.fake.write_paths()) if r.method != "GET"])


async def test_first_message_creates_a_record(case: CrmCase, crm: Harness) -> None:
    response = await crm.add(request_for(case, sms("m1", "2026-11-20T15:00:00Z", "Can we meet at 3?")))

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert response.local_date == "2026-11-20"
    assert response.return_message.message_type == pb.RETURN_MESSAGE_TYPE_SUCCESS
    assert crm.fake.record_ids() == [response.log_id]
    body = crm.fake.record_body(response.log_id)
    assert shown(case, "Can we meet at 3?") in body
    assert "SMS conversation with Jane Doe - 2026-11-20" in body
    assert "10:00 AM" in body  # 15:00 UTC in New York


async def test_later_messages_append_in_time_order_whatever_the_arrival_order(
    case: CrmCase, crm: Harness
) -> None:
    arrivals = [
        ("m2", "2026-11-20T16:00:00Z", "second"),
        ("m1", "2026-11-20T15:00:00Z", "first"),
        ("m3", "2026-11-20T17:00:00Z", "third"),
    ]
    outcomes = []
    log_ids = set()
    for message_id, at, text in arrivals:
        response = await crm.add(request_for(case, sms(message_id, at, text)))
        outcomes.append(response.outcome)
        log_ids.add(response.log_id)

    assert outcomes == [pb.LOG_OUTCOME_CREATED, pb.LOG_OUTCOME_APPENDED, pb.LOG_OUTCOME_APPENDED]
    assert len(log_ids) == 1
    (log_id,) = log_ids
    assert crm.fake.record_ids() == [log_id]
    body = crm.fake.record_body(log_id)
    positions = [body.index(text) for text in ("first", "second", "third")]
    assert positions == sorted(positions)
    assert "Conversation (3 messages)" in body


async def test_a_repeated_message_changes_nothing_and_costs_no_crm_call(case: CrmCase, crm: Harness) -> None:
    first = await crm.add(request_for(case, sms("m1")))
    requests_before = len(crm.fake.requests)

    again = await crm.add(request_for(case, sms("m1")))

    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert again.log_id == first.log_id
    assert len(crm.fake.requests) == requests_before


async def test_voicemail_and_fax_get_one_record_each_with_their_links(case: CrmCase, crm: Harness) -> None:
    voicemail = sms("vm1", kind=pb.MESSAGE_TYPE_VOICEMAIL, text="")
    fax = sms("fax1", kind=pb.MESSAGE_TYPE_FAX, text="")
    vm_response = await crm.add(
        request_for(case, voicemail, recording_link="https://media.example.com/vm1.mp3")
    )
    fax_response = await crm.add(request_for(case, fax, fax_doc_link="https://media.example.com/fax1.pdf"))

    assert vm_response.outcome == fax_response.outcome == pb.LOG_OUTCOME_CREATED
    assert vm_response.log_id != fax_response.log_id
    assert "https://media.example.com/vm1.mp3" in crm.fake.record_body(vm_response.log_id)
    assert "Voicemail left by Jane Doe" in crm.fake.record_body(vm_response.log_id)
    assert "https://media.example.com/fax1.pdf" in crm.fake.record_body(fax_response.log_id)


async def test_refused_credentials_fail_precondition_and_log_nothing(case: CrmCase, crm: Harness) -> None:
    status = await crm.add_error(request_for(case, sms("m1")), auth="Bearer wrong")

    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "CRM_AUTH_FAILED"
    assert status.error_info is not None and status.error_info.metadata["crm_http_status"] == "401"
    assert status.error_info.metadata["crm"] == case.crm
    assert crm.fake.record_ids() == []
    # The message was not marked logged: the same call with good credentials logs it.
    retry = await crm.add(request_for(case, sms("m1")))
    assert retry.outcome == pb.LOG_OUTCOME_CREATED


async def test_missing_credentials_are_unauthenticated(case: CrmCase, crm: Harness) -> None:
    status = await crm.add_error(request_for(case, sms("m1")), auth="")

    assert status.code == grpc.StatusCode.UNAUTHENTICATED
    assert status.reason == "CRM_CREDENTIALS_MISSING"
    assert crm.fake.requests == []


async def test_rate_limit_is_unavailable_with_retry_info(case: CrmCase, crm: Harness) -> None:
    crm.fake.inject(
        Fault(
            status=429,
            body={"error": "Too many requests"},
            headers={"Retry-After": "7"},
            path_pattern=crm.fake.write_paths(),
        )
    )

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 7
    retry = await crm.add(request_for(case, sms("m1")))
    assert retry.outcome == pb.LOG_OUTCOME_CREATED
    assert len(crm.fake.record_ids()) == 1


async def test_server_error_is_unavailable_and_a_retry_does_not_duplicate(
    case: CrmCase, crm: Harness
) -> None:
    crm.fake.inject(Fault(status=503, body={"error": "maintenance"}, path_pattern=crm.fake.write_paths()))

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_UNAVAILABLE"
    await crm.add(request_for(case, sms("m1")))
    await crm.add(request_for(case, sms("m1")))
    assert len(crm.fake.record_ids()) == 1


async def test_a_slow_crm_times_out_as_unavailable(case: CrmCase, crm: Harness) -> None:
    crm.fake.inject(Fault(delay=2.5, status=500, path_pattern=crm.fake.write_paths()))

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_TIMEOUT"


async def test_a_dropped_connection_is_unavailable(case: CrmCase, crm: Harness) -> None:
    crm.fake.inject(Fault(drop_connection=True, path_pattern=crm.fake.write_paths()))

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_UNAVAILABLE"


async def test_a_malformed_reply_is_internal_crm_bad_response(case: CrmCase, crm: Harness) -> None:
    crm.fake.inject(Fault(status=200, malformed=True, path_pattern=crm.fake.write_paths()))

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


async def test_a_failed_append_loses_nothing_and_marks_nothing(case: CrmCase, crm: Harness) -> None:
    first = await crm.add(request_for(case, sms("m1", "2026-11-20T15:00:00Z", "one")))
    crm.fake.inject(Fault(status=500, body={"error": "boom"}, path_pattern=crm.fake.write_paths()))
    await crm.add_error(request_for(case, sms("m2", "2026-11-20T15:05:00Z", "two")))
    third = await crm.add(request_for(case, sms("m3", "2026-11-20T15:10:00Z", "three")))
    body = crm.fake.record_body(first.log_id)
    assert "one" in body and "three" in body and "two" not in body

    retry = await crm.add(request_for(case, sms("m2", "2026-11-20T15:05:00Z", "two")))

    assert retry.outcome == pb.LOG_OUTCOME_APPENDED
    assert third.log_id == retry.log_id == first.log_id
    body = crm.fake.record_body(first.log_id)
    assert body.count("two") == 1
    assert body.index("one") < body.index("two") < body.index("three")


async def test_update_message_log_appends_and_is_idempotent(case: CrmCase, crm: Harness) -> None:
    first = await crm.add(request_for(case, sms("m1", text="one")))
    update = update_request(request_for(case, sms("m2", "2026-11-20T16:00:00Z", "two")), first.log_id)

    appended = await crm.update(update)
    again = await crm.update(update)

    assert appended.outcome == pb.LOG_OUTCOME_APPENDED and appended.log_id == first.log_id
    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert crm.fake.record_body(first.log_id).count("two") == 1


async def test_update_of_a_record_deleted_in_the_crm_is_not_found(case: CrmCase, crm: Harness) -> None:
    first = await crm.add(request_for(case, sms("m1")))
    crm.fake.delete_record(first.log_id)

    status = await crm.update_error(
        update_request(request_for(case, sms("m2", "2026-11-20T16:00:00Z")), first.log_id)
    )

    assert status.code == grpc.StatusCode.NOT_FOUND
    assert status.reason == "CRM_RECORD_NOT_FOUND"


async def test_a_digest_deleted_in_the_crm_is_recreated_with_the_whole_day(
    case: CrmCase, crm: Harness
) -> None:
    first = await crm.add(request_for(case, sms("m1", "2026-11-20T15:00:00Z", "one")))
    crm.fake.delete_record(first.log_id)

    second = await crm.add(request_for(case, sms("m2", "2026-11-20T16:00:00Z", "two")))

    assert second.outcome == pb.LOG_OUTCOME_CREATED
    assert second.log_id != first.log_id
    body = crm.fake.record_body(second.log_id)
    assert body.index("one") < body.index("two")
    assert (await crm.add(request_for(case, sms("m1")))).log_id == second.log_id


async def test_writes_per_create_and_append_are_as_declared(case: CrmCase, crm: Harness) -> None:
    await crm.add(request_for(case, sms("m0", "2026-11-20T15:00:00Z", "text 0")))
    assert write_calls(crm) == case.writes_per_create
    for i in (1, 2):
        await crm.add(request_for(case, sms(f"m{i}", f"2026-11-20T15:0{i}:00Z", f"text {i}")))

    assert write_calls(crm) == case.writes_per_create + 2 * case.writes_per_append


async def test_a_redirect_is_not_followed_to_another_host(case: CrmCase, crm: Harness) -> None:
    crm.fake.inject(
        Fault(
            status=307,
            body={"error": "moved"},
            headers={"Location": "https://attacker.example/steal"},
            path_pattern=crm.fake.write_paths(),
        )
    )

    status = await crm.add_error(request_for(case, sms("m1")))

    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "CRM_REJECTED"
    assert len(crm.fake.calls(path_pattern=crm.fake.write_paths())) == 1


async def test_a_persons_edit_survives_the_next_append(case: CrmCase, crm: Harness) -> None:
    first = await crm.add(request_for(case, sms("m1", "2026-11-20T15:00:00Z", "one")))
    crm.fake.edit_record(first.log_id, crm.fake.record_body(first.log_id) + "\nCalled back: promised to pay")

    second = await crm.add(request_for(case, sms("m2", "2026-11-20T15:05:00Z", "two")))

    assert second.log_id == first.log_id
    body = crm.fake.record_body(first.log_id)
    assert "two" in body
    if adapter_class(case.crm).reads_records:
        assert body.index("Called back: promised to pay") < body.index("two")
    else:
        # The documented limit of a CRM whose API cannot return a record: the append overwrites.
        assert "promised to pay" not in body


@pytest.fixture
async def settling(case: CrmCase, make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    """As `crm`, with a short settle window after a write that got no answer."""
    async with make_harness(
        case.make_fake(),
        case.auth,
        MESSAGELOG_CRM_TIMEOUT="1",
        MESSAGELOG_CRM_MAX_ATTEMPTS="1",
        MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS),
    ) as harness:
        yield harness


SETTLE_SECONDS = 0.3


async def test_a_create_applied_but_unanswered_is_not_made_twice(case: CrmCase, settling: Harness) -> None:
    settling.fake.inject(
        Fault(
            drop_connection=True,
            method=case.create_method,
            path_pattern=settling.fake.write_paths(),
            after_effect=True,
        )
    )
    status = await settling.add_error(request_for(case, sms("m1", text="first words")))
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert len(settling.fake.record_ids()) == 1  # the CRM made it; the answer was lost

    # Until the lost write has settled the digest is held; then the retry finds or remakes it.
    retry = await _retry_until_settled(settling, request_for(case, sms("m1", text="first words")))

    assert retry.outcome == pb.LOG_OUTCOME_CREATED
    if adapter_class(case.crm).finds_created:
        assert settling.fake.record_ids() == [retry.log_id]
    else:
        # The documented limit of a CRM whose API cannot search for the record: a second one.
        assert len(settling.fake.record_ids()) == 2


async def _retry_until_settled(h: Harness, request: service_pb.AddMessageLogRequest) -> Any:
    for _ in range(20):
        try:
            return await h.add(request)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(SETTLE_SECONDS)
    raise AssertionError("the digest was still held after 20 settle windows")


async def test_the_account_is_asked_of_the_crm_once_per_credential(case: CrmCase, crm: Harness) -> None:
    for i in range(3):
        await crm.add(request_for(case, sms(f"m{i}", f"2026-11-20T15:0{i}:00Z", f"text {i}")))

    expected = 0 if adapter_class(case.crm).identity is None else 1
    assert len(crm.fake.identity_lookups) == expected


async def test_a_refused_credential_learns_nothing(case: CrmCase, crm: Harness) -> None:
    if adapter_class(case.crm).identity is None:
        pytest.skip(f"{case.crm} has no identity lookup: its one account is configured (README)")
    first = await crm.add(request_for(case, sms("m1", text="one")))

    resent = await crm.add_error(request_for(case, sms("m1", text="one")), auth="Bearer wrong")
    updated = await crm.update_error(
        update_request(request_for(case, sms("m2", "2026-11-20T16:00:00Z", "two")), first.log_id),
        auth="Bearer wrong",
    )

    for status in (resent, updated):
        assert status.code == grpc.StatusCode.FAILED_PRECONDITION
        assert status.reason == "CRM_AUTH_FAILED"
        assert first.log_id not in status.message
    assert "two" not in crm.fake.record_body(first.log_id)


async def test_the_fake_refuses_what_the_crm_documents_as_refused(case: CrmCase, crm: Harness) -> None:
    refusals = crm.fake.documented_refusals
    assert len(refusals) >= 2, f"the {case.crm} fake names fewer than two documented refusals"
    for refusal in refusals:
        assert refusal.source, refusal
        answer = await crm.fake.handle(
            FakeRequest(
                method=refusal.method,
                path=refusal.path,
                query={},
                headers={"authorization": case.auth, "bhresttoken": case.auth},
                body=refusal.body,
            )
        )
        assert isinstance(answer, FakeResponse), refusal
        assert answer.status == refusal.status, (refusal, answer)
        message = answer.body
        for key in refusal.error_at:
            message = message[key]
        assert isinstance(message, str) and message, (refusal, answer.body)
