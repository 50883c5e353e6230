"""A person's edit of a record in the CRM is kept, and no message is lost around it."""

from __future__ import annotations

from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from tests.conftest import Harness, fake_pipedrive
from tests.helpers import add_request, sms


async def log(h: Harness, message_id: str, minute: int, text: str) -> pb.LogOutcome:
    response = await h.add(add_request("pipedrive", sms(message_id, f"2026-11-20T15:{minute:02d}:00Z", text)))
    return response.outcome


async def test_an_edited_record_keeps_the_edit_and_gets_later_messages_after_it(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    await log(pipedrive, "m2", 1, "second message")
    (activity,) = fake_pipedrive(pipedrive).activities.values()
    edited = "<p>Customer called back, <b>deal agreed</b>. Lines below trimmed by Alice.</p>"
    activity["note"] = edited

    with capture_logs() as logs:
        assert await log(pipedrive, "m3", 2, "third message") == pb.LOG_OUTCOME_APPENDED
    note = activity["note"]
    assert note.startswith(edited)
    assert "third message" in note
    assert "Later messages (1 message)" in note
    assert "first message" not in note  # the person removed it; we don't put it back
    assert [e["event"] for e in logs].count("record_edit_kept") == 1

    # Later appends keep the edit without reading it as a new one, and keep the order.
    with capture_logs() as logs:
        assert await log(pipedrive, "m4", 3, "fourth message") == pb.LOG_OUTCOME_APPENDED
    note = activity["note"]
    assert note.startswith(edited)
    assert note.index("third message") < note.index("fourth message")
    assert "Later messages (2 messages)" in note
    assert "record_edit_kept" not in [e["event"] for e in logs]
    assert (await log(pipedrive, "m1", 0, "first message")) == pb.LOG_OUTCOME_ALREADY_LOGGED


async def test_an_edit_of_the_later_part_is_kept_too(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    (activity,) = fake_pipedrive(pipedrive).activities.values()
    activity["note"] = "Summary by Alice."
    await log(pipedrive, "m2", 1, "second message")
    activity["note"] = activity["note"].replace("second message", "second message (confirmed)")

    await log(pipedrive, "m3", 2, "third message")

    note = activity["note"]
    assert note.startswith("Summary by Alice.")
    assert "second message (confirmed)" in note
    assert note.index("second message (confirmed)") < note.index("third message")
    assert note.count("second message") == 1


async def test_a_record_reformatted_by_the_crm_is_not_taken_for_an_edit(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    (activity,) = fake_pipedrive(pipedrive).activities.values()
    # What an HTML sanitizer does: other spacing and entity forms, same words.
    activity["note"] = activity["note"].replace("<br>", "<br />\n").replace("&#x27;", "&#39;")

    with capture_logs() as logs:
        await log(pipedrive, "m2", 1, "second message")

    assert "record_edit_kept" not in [e["event"] for e in logs]
    assert "Conversation (2 messages)" in activity["note"]


async def test_a_cleared_record_gets_the_later_messages(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    (activity,) = fake_pipedrive(pipedrive).activities.values()
    activity["note"] = ""

    await log(pipedrive, "m2", 1, "second message")

    assert "second message" in activity["note"]
    assert "first message" not in activity["note"]


async def test_an_append_costs_one_read_and_one_write(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    before = len(fake_pipedrive(pipedrive).requests)

    await log(pipedrive, "m2", 1, "second message")

    assert [(r.method, r.path.rsplit("/", 1)[0]) for r in fake_pipedrive(pipedrive).requests[before:]] == [
        ("GET", "/api/v2/activities"),
        ("PATCH", "/api/v2/activities"),
    ]


async def test_a_record_deleted_after_an_edit_is_recreated_whole(pipedrive: Harness) -> None:
    await log(pipedrive, "m1", 0, "first message")
    (activity,) = fake_pipedrive(pipedrive).activities.values()
    activity["note"] = "Edited."
    await log(pipedrive, "m2", 1, "second message")
    fake_pipedrive(pipedrive).delete_record(str(activity["id"]))

    assert await log(pipedrive, "m3", 2, "third message") == pb.LOG_OUTCOME_CREATED

    (recreated,) = fake_pipedrive(pipedrive).activities.values()
    note = recreated["note"]
    assert note.index("first message") < note.index("second message") < note.index("third message")
    assert "Conversation (3 messages)" in note
