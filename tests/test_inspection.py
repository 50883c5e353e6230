"""GetMessageLog and ListMessageLogs through the real server: a logged, a pending, a failed and an
unknown message, failed attempts counted, pagination, and the same authorization as writes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

from tests.conftest import PIPEDRIVE_AUTH, Harness, fake_pipedrive
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails, add_request, sms
from tests.security.conftest import CALLER_TOKEN, bearer

WRITES = r"^/api/v2/activities"
USER = pb.CrmUser(id="1001", hostname="acme.pipedrive.com")


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


async def get(h: Harness, message_id: str, **fields: Any) -> pb.MessageLogRecord:
    request = service_pb.GetMessageLogRequest(crm="pipedrive", user=USER, message_id=message_id, **fields)
    response = await h.stub.GetMessageLog(request, metadata=h.metadata(), timeout=10)
    return response.message_log


async def list_logs(h: Harness, **fields: Any) -> service_pb.ListMessageLogsResponse:
    request = service_pb.ListMessageLogsRequest(crm="pipedrive", user=USER, **fields)
    response: service_pb.ListMessageLogsResponse = await h.stub.ListMessageLogs(
        request, metadata=h.metadata(), timeout=10
    )
    return response


async def list_error(h: Harness, **fields: Any) -> StatusDetails:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await list_logs(h, **fields)
    return StatusDetails(raised.value)


async def test_a_logged_message_names_its_record_day_and_kind(pipedrive: Harness) -> None:
    at = hours_ago(1)
    added = await pipedrive.add(add_request("pipedrive", sms("m1", at, conversation="c-9")))

    record = await get(pipedrive, "m1")

    assert record.state == pb.LOG_STATE_LOGGED
    assert record.log_id == added.log_id
    assert record.local_date == added.local_date
    assert record.type == pb.MESSAGE_TYPE_SMS
    assert (record.attempts, record.HasField("last_failure")) == (1, False)
    assert (record.user_id, record.contact_id, record.conversation_id) == ("1001", "42", "c-9")


async def test_a_message_never_handed_over_is_unknown(pipedrive: Harness) -> None:
    record = await get(pipedrive, "never-sent", contact_id="42")

    assert record.state == pb.LOG_STATE_UNKNOWN
    assert (record.message_id, record.log_id, record.attempts) == ("never-sent", "", 0)


async def test_a_failed_message_says_why_and_a_later_success_keeps_the_count(pipedrive: Harness) -> None:
    fake = fake_pipedrive(pipedrive)
    fake.inject(
        Fault(status=400, body={"success": False, "error": "Invalid due_date"}, path_pattern=WRITES), times=2
    )
    request = add_request("pipedrive", sms("m1", hours_ago(2)))
    for _ in range(2):
        assert (await pipedrive.add_error(request)).reason == "CRM_REJECTED"

    failed = await get(pipedrive, "m1")
    added = await pipedrive.add(request)
    logged = await get(pipedrive, "m1")

    assert failed.state == pb.LOG_STATE_FAILED
    assert (failed.attempts, failed.log_id) == (2, "")
    assert failed.last_failure.status == "FAILED_PRECONDITION"
    assert failed.last_failure.reason == "CRM_REJECTED"
    assert failed.last_failure.crm_http_status == 400
    failed_at = failed.last_failure.time.ToDatetime(tzinfo=UTC)
    assert abs(failed_at - datetime.now(UTC)) < timedelta(seconds=30)
    assert (logged.state, logged.log_id, logged.attempts) == (pb.LOG_STATE_LOGGED, added.log_id, 3)
    assert logged.last_failure == failed.last_failure


async def test_a_message_being_written_is_pending(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(Fault(delay=1.5, method="POST", path_pattern=WRITES))
    writing = asyncio.create_task(pipedrive.add(add_request("pipedrive", sms("m1", hours_ago(1)))))
    await asyncio.sleep(0.5)

    pending = await get(pipedrive, "m1")
    added = await writing

    assert (pending.state, pending.attempts, pending.log_id) == (pb.LOG_STATE_PENDING, 1, "")
    assert (await get(pipedrive, "m1")).log_id == added.log_id


async def test_a_group_message_answers_for_its_least_advanced_contact(pipedrive: Harness) -> None:
    message = sms("m1", hours_ago(1))
    await pipedrive.add(add_request("pipedrive", message, contact_id="42"))
    fake_pipedrive(pipedrive).inject(Fault(status=400, body={"success": False}, path_pattern=WRITES))
    await pipedrive.add_error(add_request("pipedrive", message, contact_id="43"))

    either = await get(pipedrive, "m1")
    first = await get(pipedrive, "m1", contact_id="42")

    assert (either.state, either.contact_id) == (pb.LOG_STATE_FAILED, "43")
    assert (first.state, first.contact_id) == (pb.LOG_STATE_LOGGED, "42")


async def test_another_account_sees_nothing(pipedrive: Harness) -> None:
    """The account is the one the CRM names for the credential, whatever hostname is claimed."""
    await pipedrive.add(add_request("pipedrive", sms("m1", hours_ago(1))))
    fake_pipedrive(pipedrive).add_company("globex-token", 7002)
    globex = (("crm-authorization", "Bearer globex-token"),)

    response = await pipedrive.stub.GetMessageLog(
        service_pb.GetMessageLogRequest(crm="pipedrive", user=USER, message_id="m1"), metadata=globex
    )
    listed = await pipedrive.stub.ListMessageLogs(
        service_pb.ListMessageLogsRequest(crm="pipedrive", user=USER), metadata=globex
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pipedrive.stub.GetMessageLog(
            service_pb.GetMessageLogRequest(crm="pipedrive", user=USER, message_id="m1"),
            metadata=(("crm-authorization", "Bearer forged"),),
        )

    assert response.message_log.state == pb.LOG_STATE_UNKNOWN
    assert list(listed.message_logs) == []
    assert StatusDetails(refused.value).reason == "CRM_AUTH_FAILED"
    assert (await get(pipedrive, "m1")).state == pb.LOG_STATE_LOGGED


async def test_reads_need_the_crm_credential(pipedrive: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pipedrive.stub.GetMessageLog(
            service_pb.GetMessageLogRequest(crm="pipedrive", user=USER, message_id="m1")
        )

    assert StatusDetails(raised.value).reason == "CRM_CREDENTIALS_MISSING"


async def test_a_caller_limited_to_other_crms_may_not_read(
    make_harness: Callable[..., Any], tmp_path: Path
) -> None:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"{hashlib.sha256(CALLER_TOKEN.encode()).hexdigest()} billing\n")
    rules = json.dumps({"billing": ["clio"]})
    async with make_harness(
        FakePipedrive(),
        PIPEDRIVE_AUTH,
        extra_metadata=bearer(CALLER_TOKEN),
        MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file),
        MESSAGELOG_CALLER_CRMS=rules,
    ) as h:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await get(h, "m1")
        denied = await list_error(h)

    assert StatusDetails(raised.value).reason == "CALLER_NOT_ALLOWED"
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED


async def test_list_filters_by_conversation_contact_and_days(pipedrive: Harness) -> None:
    now = datetime.now(UTC)
    day_before = now - timedelta(days=2, hours=1)
    for message_id, at, conversation, contact in (
        ("a", now - timedelta(minutes=5), "c1", "42"),
        ("b", now - timedelta(minutes=4), "c2", "42"),
        ("c", day_before, "c1", "42"),
        ("d", now - timedelta(minutes=3), "c1", "43"),
    ):
        request = add_request("pipedrive", sms(message_id, at.isoformat(), conversation=conversation))
        request.contact.id = contact
        await pipedrive.add(request)
    first_day = (await get(pipedrive, "c")).local_date
    last_day = (await get(pipedrive, "a")).local_date

    def ids(response: service_pb.ListMessageLogsResponse) -> set[str]:
        return {m.message_id for m in response.message_logs}

    assert ids(await list_logs(pipedrive)) == {"a", "b", "c", "d"}
    assert ids(await list_logs(pipedrive, conversation_id="c1")) == {"a", "c", "d"}
    assert ids(await list_logs(pipedrive, contact_id="43")) == {"d"}
    assert ids(await list_logs(pipedrive, start_date=last_day)) == {"a", "b", "d"}
    assert ids(await list_logs(pipedrive, end_date=first_day)) == {"c"}
    assert ids(await list_logs(pipedrive, user_id="someone-else")) == set()


async def test_list_pages_through_every_message_once(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(Fault(status=400, body={"success": False}, path_pattern=WRITES))
    await pipedrive.add_error(add_request("pipedrive", sms("m0", hours_ago(3))))
    for i in range(1, 7):
        await pipedrive.add(add_request("pipedrive", sms(f"m{i}", hours_ago(3 - i / 10))))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await list_logs(pipedrive, page_size=4, page_token=token)
        seen += [m.message_id for m in page.message_logs]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert sorted(seen) == [f"m{i}" for i in range(7)]
    assert pages == 2
    first = await list_logs(pipedrive, page_size=4)
    states = {m.message_id: m.state for m in first.message_logs}
    assert states.get("m0", pb.LOG_STATE_FAILED) == pb.LOG_STATE_FAILED
    changed = await list_error(pipedrive, page_size=4, page_token=first.next_page_token, contact_id="43")
    forged = await list_error(pipedrive, page_token="not-a-token")
    assert (changed.code, changed.fields) == (grpc.StatusCode.INVALID_ARGUMENT, {"page_token"})
    assert forged.fields == {"page_token"}


async def test_list_refuses_bad_dates_and_page_sizes(pipedrive: Harness) -> None:
    error = await list_error(pipedrive, start_date="2026-13-01", end_date="yesterday", page_size=-1)

    assert error.fields == {"start_date", "end_date", "page_size"}


async def test_postgres_answers_like_sqlite(make_harness: Callable[..., Any], pg_url: str) -> None:
    async with make_harness(FakePipedrive(), PIPEDRIVE_AUTH, MESSAGELOG_DATABASE_URL=pg_url) as h:
        fake_pipedrive(h).inject(Fault(status=400, body={"success": False}, path_pattern=WRITES), times=2)
        for auth in (PIPEDRIVE_AUTH, PIPEDRIVE_AUTH, "Bearer wrong"):
            # The last: a credential the CRM refuses proves no account, so its failure counts nowhere.
            await h.add_error(add_request("pipedrive", sms("m0", hours_ago(2))), auth=auth)
        added = await h.add(add_request("pipedrive", sms("m1", hours_ago(1))))
        failed, logged = await get(h, "m0"), await get(h, "m1")
        first = await list_logs(h, page_size=1, conversation_id="conv-1")
        second = await list_logs(h, page_size=1, conversation_id="conv-1", page_token=first.next_page_token)

    assert (failed.state, failed.attempts, failed.last_failure.reason) == (
        pb.LOG_STATE_FAILED,
        2,
        "CRM_REJECTED",
    )
    assert (logged.state, logged.log_id) == (pb.LOG_STATE_LOGGED, added.log_id)
    assert [m.message_id for m in (*first.message_logs, *second.message_logs)] == ["m0", "m1"]
    assert second.next_page_token == ""


async def test_failed_attempts_go_at_retention_once_their_window_passed(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(Fault(status=400, body={"success": False}, path_pattern=WRITES))
    await pipedrive.add_error(add_request("pipedrive", sms("old", hours_ago(1))))
    window_start = int(time.time() * 1000) + 1
    await asyncio.sleep(0.01)
    fake_pipedrive(pipedrive).inject(Fault(status=400, body={"success": False}, path_pattern=WRITES))
    await pipedrive.add_error(add_request("pipedrive", sms("new", hours_ago(1))))

    await pipedrive.server.store.purge(window_start)

    assert (await get(pipedrive, "old")).state == pb.LOG_STATE_UNKNOWN
    assert (await get(pipedrive, "new")).state == pb.LOG_STATE_FAILED
