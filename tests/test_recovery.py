"""Digests recover from lost writes: a write seen landed ends the hold at once, a lost read holds
nothing, and a write that may still land holds the digest back only for the settle window.

The settle window here is far longer than any test: a call that goes through during it went
through because the service saw that waiting was not needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import PIPEDRIVE_AUTH, Harness, fake_pipedrive
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

TODAY = datetime.now(UTC).date().isoformat()
CREATE = r"^/api/v2/activities$"
RECORD = r"^/api/v2/activities/\d+$"


@pytest.fixture
async def pipedrive(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(
        FakePipedrive(), PIPEDRIVE_AUTH, MESSAGELOG_CRM_TIMEOUT="0.5", MESSAGELOG_CREATE_SETTLE_SECONDS="600"
    ) as harness:
        yield harness


def message(message_id: str, minute: int) -> pb.Message:
    return sms(message_id, f"{TODAY}T15:{minute:02d}:00Z", f"words of {message_id}")


async def add(h: Harness, message_id: str, minute: int) -> Any:
    return await h.add(add_request("pipedrive", message(message_id, minute)))


async def test_an_append_whose_reply_was_lost_but_which_landed_is_seen_and_not_waited_for(
    pipedrive: Harness,
) -> None:
    first = await add(pipedrive, "m1", 0)
    fake_pipedrive(pipedrive).inject(Fault(drop_connection=True, method="PATCH", after_effect=True))
    lost = await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    assert lost.code == grpc.StatusCode.UNAVAILABLE

    later = await add(pipedrive, "m3", 2)
    retried = await add(pipedrive, "m2", 1)

    assert later.outcome == pb.LOG_OUTCOME_APPENDED
    assert retried.outcome == pb.LOG_OUTCOME_APPENDED
    note = fake_pipedrive(pipedrive).activities[int(first.log_id)]["note"]
    for text in ("words of m1", "words of m2", "words of m3"):
        assert note.count(text) == 1


async def test_an_append_lost_before_it_landed_holds_the_digest_back_with_retry_info(
    pipedrive: Harness,
) -> None:
    await add(pipedrive, "m1", 0)
    fake_pipedrive(pipedrive).inject(Fault(drop_connection=True, method="PATCH"))
    await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    patches = len(fake_pipedrive(pipedrive).calls("PATCH", RECORD))

    held = await pipedrive.add_error(add_request("pipedrive", message("m3", 2)))

    assert held.reason == "WRITE_UNSETTLED"
    assert held.retry_info is not None
    assert 0 < held.retry_info.retry_delay.ToTimedelta().total_seconds() <= 600
    assert len(fake_pipedrive(pipedrive).calls("PATCH", RECORD)) == patches


async def test_a_create_whose_reply_was_lost_but_which_landed_is_found_without_waiting(
    pipedrive: Harness,
) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(drop_connection=True, method="POST", path_pattern=CREATE, after_effect=True)
    )
    await pipedrive.add_error(add_request("pipedrive", message("m1", 0)))

    retried = await add(pipedrive, "m1", 0)

    (activity_id,) = fake_pipedrive(pipedrive).activities
    assert retried.outcome == pb.LOG_OUTCOME_CREATED
    assert retried.log_id == str(activity_id)
    assert len(fake_pipedrive(pipedrive).calls("POST", CREATE)) == 1


async def test_a_read_that_goes_unanswered_holds_nothing_back(pipedrive: Harness) -> None:
    first = await add(pipedrive, "m1", 0)
    # Every attempt of the append's read loses its connection: the call fails, nothing was written.
    fake_pipedrive(pipedrive).inject(Fault(drop_connection=True, method="GET", path_pattern=RECORD), times=10)
    failed = await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    assert failed.code == grpc.StatusCode.UNAVAILABLE
    assert failed.reason != "WRITE_UNSETTLED"
    fake_pipedrive(pipedrive).faults.clear()

    retried = await add(pipedrive, "m2", 1)

    assert retried.outcome == pb.LOG_OUTCOME_APPENDED
    assert "words of m2" in fake_pipedrive(pipedrive).activities[int(first.log_id)]["note"]


async def test_once_faults_stop_a_held_digest_is_written_after_the_settle_window(
    make_harness: Callable[..., Any],
) -> None:
    settle = 0.6
    async with make_harness(
        FakePipedrive(),
        PIPEDRIVE_AUTH,
        MESSAGELOG_CRM_TIMEOUT="0.5",
        MESSAGELOG_CREATE_SETTLE_SECONDS=str(settle),
    ) as h:
        await add(h, "m1", 0)
        # Twice lost before landing: the second loss holds from its own write, not on top of the first.
        for attempt in range(2):
            fake_pipedrive(h).inject(Fault(drop_connection=True, method="PATCH"))
            await h.add_error(add_request("pipedrive", message("m2", 1)))
            held = await h.add_error(add_request("pipedrive", message("m2", 1)))
            assert held.reason == "WRITE_UNSETTLED", attempt
            assert held.retry_info is not None
            wait = held.retry_info.retry_delay.ToTimedelta().total_seconds()
            assert 0 < wait <= settle
            await asyncio.sleep(wait)  # as a caller honoring RetryInfo does

        retried = await add(h, "m2", 1)

        assert retried.outcome == pb.LOG_OUTCOME_APPENDED


async def test_a_lost_write_repeating_a_landed_text_is_waited_for(pipedrive: Harness) -> None:
    """A record showing a text proves nothing about a lost write that sent the same text again
    (as after a process killed once its write landed): that write may still land, later."""
    await add(pipedrive, "m1", 0)
    fake_pipedrive(pipedrive).inject(Fault(drop_connection=True, method="PATCH", after_effect=True))
    await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    # The retry sees its text landed and sends it again; this time the CRM has not applied it.
    fake_pipedrive(pipedrive).inject(Fault(drop_connection=True, method="PATCH"))
    await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    patches = len(fake_pipedrive(pipedrive).calls("PATCH", RECORD))

    held = await pipedrive.add_error(add_request("pipedrive", message("m3", 2)))

    assert held.reason == "WRITE_UNSETTLED"
    assert len(fake_pipedrive(pipedrive).calls("PATCH", RECORD)) == patches


async def test_an_append_sent_twice_by_a_retry_holds_even_though_the_record_shows_its_text(
    pipedrive: Harness,
) -> None:
    # The first copy of the append is applied and answered 500, so the HTTP layer sends it again;
    # that second copy gets no answer and may still land. Reading the record shows the text, but
    # that proves only the first copy landed: writing now could be undone by the second.
    await add(pipedrive, "m1", 0)
    fake = fake_pipedrive(pipedrive)
    fake.inject(Fault(status=500, body={"success": False}, method="PATCH", after_effect=True))
    fake.inject(Fault(drop_connection=True, method="PATCH"))
    lost = await pipedrive.add_error(add_request("pipedrive", message("m2", 1)))
    assert lost.code == grpc.StatusCode.UNAVAILABLE
    assert len(fake.calls("PATCH", RECORD)) == 2

    held = await pipedrive.add_error(add_request("pipedrive", message("m3", 2)))

    assert held.reason == "WRITE_UNSETTLED"
    assert len(fake.calls("PATCH", RECORD)) == 2
