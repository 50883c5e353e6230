"""A create whose answer never came back: it ends as one record, never two, and loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

CREATE = r"^/api/v2/activities$"
SETTLE = 1.2


@pytest.fixture
async def pipedrive(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(
        FakePipedrive(),
        "Bearer pd-token",
        MESSAGELOG_CRM_TIMEOUT="0.5",
        MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE),
    ) as harness:
        yield harness


def fake(h: Harness) -> FakePipedrive:
    assert isinstance(h.fake, FakePipedrive)
    return h.fake


@pytest.mark.parametrize(
    "lost_reply",
    [
        Fault(drop_connection=True, method="POST", path_pattern=CREATE, after_effect=True),
        Fault(status=500, body={"success": False}, method="POST", path_pattern=CREATE, after_effect=True),
        Fault(delay=1.0, status=201, method="POST", path_pattern=CREATE, after_effect=True),
    ],
    ids=["dropped-connection", "server-error", "timeout"],
)
async def test_a_create_that_happened_but_whose_reply_was_lost_is_found_not_repeated(
    pipedrive: Harness, lost_reply: Fault
) -> None:
    fake(pipedrive).inject(lost_reply)

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1", text="first words")))
    assert status.code == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(lost_reply.delay)  # a slow CRM finishes the create after we stopped waiting
    assert len(fake(pipedrive).activities) == 1
    await asyncio.sleep(SETTLE)

    with capture_logs() as logs:
        retry = await pipedrive.add(add_request("pipedrive", sms("m1", text="first words")))
        later = await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z", "more words")))

    (activity,) = fake(pipedrive).activities.values()
    assert retry.log_id == later.log_id == str(activity["id"])
    assert retry.outcome == pb.LOG_OUTCOME_CREATED
    assert activity["note"].count("first words") == 1
    assert "more words" in activity["note"]
    assert [e["found"] for e in logs if e["event"] == "create_reconciled"] == [True]
    assert len(fake(pipedrive).calls("POST", CREATE)) == 1


async def test_a_create_that_never_happened_is_made_on_the_retry(pipedrive: Harness) -> None:
    fake(pipedrive).inject(Fault(delay=1.0, status=500, method="POST", path_pattern=CREATE))

    await pipedrive.add_error(add_request("pipedrive", sms("m1")))
    assert fake(pipedrive).activities == {}
    await asyncio.sleep(SETTLE)

    with capture_logs() as logs:
        retry = await pipedrive.add(add_request("pipedrive", sms("m1")))

    assert retry.outcome == pb.LOG_OUTCOME_CREATED
    assert len(fake(pipedrive).activities) == 1
    assert [e["found"] for e in logs if e["event"] == "create_reconciled"] == [False]


async def test_a_clean_create_needs_no_lookup(pipedrive: Harness) -> None:
    await pipedrive.add(add_request("pipedrive", sms("m1")))
    await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T16:00:00Z")))

    assert fake(pipedrive).calls("GET", CREATE) == []


async def test_until_a_lost_create_has_settled_callers_are_told_when_to_retry(pipedrive: Harness) -> None:
    fake(pipedrive).inject(Fault(drop_connection=True, method="POST", path_pattern=CREATE))
    await pipedrive.add_error(add_request("pipedrive", sms("m1")))

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "WRITE_UNSETTLED"
    assert status.retry_info is not None
    assert 0 < status.retry_info.retry_delay.ToTimedelta().total_seconds() <= SETTLE
    assert len(fake(pipedrive).calls("POST", CREATE)) == 1
