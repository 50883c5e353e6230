"""Retries inside one call: what is repeated, how long it waits, and what is never repeated."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from tests.conftest import Harness, fake_pipedrive
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

AUTH = "Bearer pd-token"
WRITES = r"^/api/v2/activities"


@pytest.fixture
def pipedrive_env() -> dict[str, str]:
    return {"MESSAGELOG_CRM_TIMEOUT": "1"}


async def test_an_append_is_retried_after_a_server_error(pipedrive: Harness) -> None:
    first = await pipedrive.add(add_request("pipedrive", sms("m1", text="one")))
    fake_pipedrive(pipedrive).inject(Fault(status=503, body={"success": False}, method="PATCH"), times=2)

    with capture_logs() as logs:
        second = await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z", "two")))

    assert second.outcome == pb.LOG_OUTCOME_APPENDED
    assert len(fake_pipedrive(pipedrive).calls("PATCH")) == 3
    assert [e["attempt"] for e in logs if e["event"] == "crm_retry"] == [2, 3]
    (rpc,) = [e for e in logs if e["event"] == "rpc"]
    assert rpc["crm_retries"] == 2
    assert "two" in fake_pipedrive(pipedrive).record_body(first.log_id)


async def test_a_create_is_not_repeated_after_a_reply_that_may_have_created_it(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(status=502, body={"success": False}, method="POST", path_pattern=WRITES)
    )

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_UNAVAILABLE"
    assert len(fake_pipedrive(pipedrive).calls("POST", WRITES)) == 1


async def test_a_create_is_repeated_after_a_rate_limit_with_a_short_retry_after(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(
            status=429,
            body={"success": False},
            headers={"Retry-After": "1"},
            method="POST",
            path_pattern=WRITES,
        )
    )
    started = time.monotonic()

    response = await pipedrive.add(add_request("pipedrive", sms("m1")))

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    assert len(fake_pipedrive(pipedrive).calls("POST", WRITES)) == 2
    assert len(fake_pipedrive(pipedrive).activities) == 1


async def test_a_long_retry_after_goes_back_to_the_caller_at_once(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(status=429, body={"success": False}, headers={"Retry-After": "30"}, path_pattern=WRITES)
    )
    status = await pipedrive.add_error(add_request("pipedrive", sms("m1")))

    # Not waited out inside the call: one write, then the answer.
    assert len(fake_pipedrive(pipedrive).calls("POST", WRITES)) == 1
    assert status.reason == "CRM_RATE_LIMITED"
    assert status.retry_info is not None
    assert status.retry_info.retry_delay.seconds == 30
    assert status.pushback_ms == "-1"


async def test_retries_stop_before_the_callers_deadline(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(Fault(status=503, body={"success": False}, method="PATCH"), times=10)
    await pipedrive.add(add_request("pipedrive", sms("m1")))
    started = time.monotonic()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z")), timeout=0.6)

    assert raised.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    retries = fake_pipedrive(pipedrive).calls("PATCH")[1:]
    # No retry starts with less than RetryPolicy.min_attempt_seconds (0.5 s) of the 0.6 s left.
    assert all(r.received_at <= started + 0.6 - 0.5 + 0.05 for r in retries)


async def test_an_unreachable_crm_is_retried_then_unavailable(make_harness: Callable[..., Any]) -> None:
    # Port 9 (discard) has no listener here: every connection is refused.
    async with make_harness(
        FakePipedrive(), AUTH, MESSAGELOG_CRM_PIPEDRIVE_BASE_URL="http://127.0.0.1:9"
    ) as h:
        with capture_logs() as logs:
            status = await h.add_error(add_request("pipedrive", sms("m1"), user_name="Alice"))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_UNAVAILABLE"
    assert len([e for e in logs if e["event"] == "crm_call"]) == 4  # every attempt, nothing reached the CRM


async def test_a_read_that_times_out_holds_nothing(make_harness: Callable[..., Any]) -> None:
    fake = FakePipedrive()
    async with make_harness(fake, AUTH, MESSAGELOG_CRM_TIMEOUT="0.5", MESSAGELOG_CRM_MAX_ATTEMPTS="1") as h:
        first = await h.add(add_request("pipedrive", sms("m1", text="one")))
        # The record read before an append never answers, so the append fails...
        fake.inject(Fault(delay=1.0, status=500, method="GET", path_pattern=WRITES))
        status = await h.add_error(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z", "two")))
        assert status.reason == "CRM_TIMEOUT"

        # ...but nothing was written, so nothing has to settle: the next call writes at once.
        second = await h.add(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z", "two")))

    assert second.outcome == pb.LOG_OUTCOME_APPENDED
    assert "two" in fake.record_body(first.log_id)
