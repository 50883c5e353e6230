"""A record keeps its kind, its day and its zone, whatever UpdateMessageLog or a later call sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import Harness, fake_pipedrive
from tests.helpers import add_request, sms, update_request

TODAY = datetime.now(UTC).date()
WRITES = r"^/api/v2/activities"


def at(hour: int, minute: int = 0, days_back: int = 0) -> str:
    return f"{TODAY - timedelta(days=days_back)}T{hour:02d}:{minute:02d}:00Z"


def voicemail(message_id: str, when: str) -> pb.Message:
    return sms(message_id, when, "Please call me back", kind=pb.MESSAGE_TYPE_VOICEMAIL)


async def _writes_refused(
    h: Harness, log_id: str, message: pb.Message, reason: str, *, then_added: bool = True, **kw: str
) -> None:
    """UpdateMessageLog of message into log_id is FAILED_PRECONDITION with reason, and the CRM
    sees no write; the message is not filed, so AddMessageLog then logs it in a record of its own."""
    fake = fake_pipedrive(h)
    writes = len(fake.calls(None, WRITES))
    before = {k: dict(v) for k, v in fake.activities.items()}

    status = await h.update_error(update_request(add_request("pipedrive", message, **kw), log_id))

    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == reason
    assert len(fake.calls(None, WRITES)) == writes
    assert fake.activities == before
    if not then_added:
        return
    added = await h.add(add_request("pipedrive", message, **kw))
    assert added.outcome == pb.LOG_OUTCOME_CREATED
    assert added.log_id != log_id


async def test_an_sms_never_turns_a_voicemail_record_into_a_digest(pipedrive: Harness) -> None:
    record = await pipedrive.add(
        add_request("pipedrive", voicemail("vm1", at(15)), recording_link="https://rec.example/vm1")
    )

    await _writes_refused(pipedrive, record.log_id, sms("s1", at(15, 5)), "RECORD_KIND_MISMATCH")

    note = fake_pipedrive(pipedrive).activities[int(record.log_id)]["note"]
    assert "https://rec.example/vm1" in note


async def test_a_voicemail_never_turns_a_digest_into_a_voicemail_record(pipedrive: Harness) -> None:
    record = await pipedrive.add(add_request("pipedrive", sms("s1", at(15), "first words")))
    await pipedrive.add(add_request("pipedrive", sms("s2", at(15, 1), "second words")))

    await _writes_refused(pipedrive, record.log_id, voicemail("vm1", at(15, 5)), "RECORD_KIND_MISMATCH")

    note = fake_pipedrive(pipedrive).activities[int(record.log_id)]["note"]
    assert "first words" in note and "second words" in note


async def test_a_voicemail_record_holds_its_own_voicemail_only(pipedrive: Harness) -> None:
    record = await pipedrive.add(add_request("pipedrive", voicemail("vm1", at(15))))

    again = await pipedrive.update(
        update_request(add_request("pipedrive", voicemail("vm1", at(15))), record.log_id)
    )
    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    await _writes_refused(pipedrive, record.log_id, voicemail("vm2", at(15, 5)), "RECORD_KIND_MISMATCH")


async def test_a_message_of_another_day_is_not_filed_under_the_records_date(pipedrive: Harness) -> None:
    record = await pipedrive.add(add_request("pipedrive", sms("s1", at(15), "today's words")))

    await _writes_refused(
        pipedrive, record.log_id, sms("s0", at(15, days_back=1), "yesterday's words"), "RECORD_DAY_MISMATCH"
    )

    note = fake_pipedrive(pipedrive).activities[int(record.log_id)]["note"]
    assert "yesterday's words" not in note


async def test_the_day_of_an_update_is_read_in_the_records_zone(pipedrive: Harness) -> None:
    """03:00 UTC is today in Tokyo's zone but yesterday in New York's, where the record's day is kept."""
    record = await pipedrive.add(add_request("pipedrive", sms("s1", at(15), "today's words")))
    early = sms("s2", at(3), "early words")

    await _writes_refused(
        pipedrive, record.log_id, early, "RECORD_DAY_MISMATCH", then_added=False, time_zone="Asia/Tokyo"
    )


async def test_an_update_of_the_same_day_in_the_records_zone_is_appended(pipedrive: Harness) -> None:
    record = await pipedrive.add(add_request("pipedrive", sms("s1", at(15), "first words")))

    later = await pipedrive.update(
        update_request(
            add_request("pipedrive", sms("s2", at(16), "later words"), time_zone="UTC"), record.log_id
        )
    )

    assert later.outcome == pb.LOG_OUTCOME_APPENDED
    assert "later words" in fake_pipedrive(pipedrive).activities[int(record.log_id)]["note"]


async def test_a_digest_is_rendered_in_the_zone_it_began_in(pipedrive: Harness) -> None:
    first = await pipedrive.add(add_request("pipedrive", sms("s1", at(15), "first words")))
    # The same instant's day in Paris is the same as in New York: the same digest.
    second = await pipedrive.add(
        add_request("pipedrive", sms("s2", at(15, 5), "second words"), time_zone="Europe/Paris")
    )

    assert second.log_id == first.log_id
    assert second.outcome == pb.LOG_OUTCOME_APPENDED
    note = fake_pipedrive(pipedrive).activities[int(first.log_id)]["note"]
    assert "times in America/New_York" in note
    assert "Europe/Paris" not in note
    assert "10:05 AM E" in note or "11:05 AM E" in note  # EST or EDT, as the date has it
    assert "CET" not in note and "CEST" not in note
