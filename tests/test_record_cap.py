"""A record has a size cap: past it, the conversation's day continues in a record of its own that
says which record it continues."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import PIPEDRIVE_AUTH, Harness, fake_pipedrive
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms, update_request

TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
async def pipedrive(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakePipedrive(), PIPEDRIVE_AUTH, MESSAGELOG_MAX_RECORD_MESSAGES="3") as harness:
        yield harness


def request(message_id: str, minute: int, text: str = "", **kw: Any) -> Any:
    return add_request(
        "pipedrive", sms(message_id, f"{TODAY}T15:{minute:02d}:00Z", text or f"words of {message_id}"), **kw
    )


async def test_a_day_past_the_cap_continues_in_a_linked_record(pipedrive: Harness) -> None:
    responses = [await pipedrive.add(request(f"m{i}", i)) for i in range(5)]

    assert [r.outcome for r in responses] == [
        pb.LOG_OUTCOME_CREATED,
        pb.LOG_OUTCOME_APPENDED,
        pb.LOG_OUTCOME_APPENDED,
        pb.LOG_OUTCOME_CREATED,
        pb.LOG_OUTCOME_APPENDED,
    ]
    first, second = responses[0].log_id, responses[3].log_id
    assert {r.log_id for r in responses[:3]} == {first}
    assert responses[4].log_id == second != first
    activities = fake_pipedrive(pipedrive).activities
    assert len(activities) == 2
    one, two = activities[int(first)], activities[int(second)]
    assert all(f"words of m{i}" in one["note"] for i in range(3))
    assert not any(f"words of m{i}" in one["note"] for i in range(3, 5))
    assert all(f"words of m{i}" in two["note"] for i in range(3, 5))
    assert "Conversation (3 messages)" in one["note"]
    assert "Conversation (2 messages)" in two["note"]
    assert two["subject"].endswith("(part 2)")
    assert f"continues the conversation of record {first}" in two["note"]


async def test_a_message_of_a_full_record_sent_again_is_already_logged_there(pipedrive: Harness) -> None:
    responses = [await pipedrive.add(request(f"m{i}", i)) for i in range(4)]

    again = await pipedrive.add(request("m1", 1))

    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert again.log_id == responses[0].log_id
    assert len(fake_pipedrive(pipedrive).activities) == 2


async def test_an_update_naming_a_full_record_goes_to_the_part_that_continues_it(pipedrive: Harness) -> None:
    responses = [await pipedrive.add(request(f"m{i}", i)) for i in range(3)]

    later = await pipedrive.update(update_request(request("m3", 3), responses[0].log_id))

    assert later.outcome == pb.LOG_OUTCOME_CREATED
    assert later.log_id != responses[0].log_id
    note = fake_pipedrive(pipedrive).activities[int(later.log_id)]["note"]
    assert "words of m3" in note
    assert f"continues the conversation of record {responses[0].log_id}" in note


async def test_a_record_whose_text_reaches_the_byte_cap_takes_no_more(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakePipedrive(), PIPEDRIVE_AUTH, MESSAGELOG_MAX_RECORD_BYTES="4096") as h:
        long = await h.add(request("m0", 0, "x" * 5000))
        after = await h.add(request("m1", 1))

    assert after.outcome == pb.LOG_OUTCOME_CREATED
    assert after.log_id != long.log_id
