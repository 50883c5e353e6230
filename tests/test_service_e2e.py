"""End to end through the real server and generated stubs, against the fake Pipedrive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from tests.conftest import PIPEDRIVE_AUTH, Harness, fake_pipedrive
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import CONTACT_PHONE, add_request, sms, update_request


async def test_three_sms_of_one_day_make_one_activity_with_one_create_and_two_appends(
    pipedrive: Harness,
) -> None:
    texts = ["Hi, is the house still for sale?", "Yes it is! Want a tour?", "Saturday at 10 works."]
    times = ["2026-11-20T14:00:00Z", "2026-11-20T14:05:00Z", "2026-11-20T14:09:00Z"]
    outcomes = []
    for i, (text, at) in enumerate(zip(texts, times, strict=True)):
        message = sms(f"m{i}", at, text, inbound=i != 1)
        outcomes.append(
            (await pipedrive.add(add_request("pipedrive", message, extras={"deals": "77"}))).outcome
        )

    repeated = await pipedrive.add(add_request("pipedrive", sms("m0", times[0], texts[0])))

    assert outcomes == [pb.LOG_OUTCOME_CREATED, pb.LOG_OUTCOME_APPENDED, pb.LOG_OUTCOME_APPENDED]
    assert repeated.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    activities = fake_pipedrive(pipedrive).activities
    assert len(activities) == 1
    (activity,) = activities.values()
    assert activity["deal_id"] == 77
    assert activity["type"] == "sms"
    assert activity["subject"] == "SMS conversation with Jane Doe - 2026-11-20"
    note = activity["note"]
    positions = [note.index(text) for text in texts]
    assert positions == sorted(positions)
    assert "Conversation (3 messages)" in note
    for time_shown in ("at 9:00 AM EST", "at 9:05 AM EST", "at 9:09 AM EST"):  # New York, not UTC
        assert time_shown in note
    assert "Alice Agent" in note  # the outbound sender, from users/me
    calls = [(r.method, r.path) for r in fake_pipedrive(pipedrive).requests]
    assert calls.count(("POST", "/api/v2/activities")) == 1
    assert calls.count(("PATCH", f"/api/v2/activities/{activity['id']}")) == 2
    # Lookups are cached per account: one activity-type list and one users/me (the identity
    # lookup, which also names the user) for the whole day.
    assert calls.count(("GET", "/api/v1/activityTypes")) == 1
    assert len(fake_pipedrive(pipedrive).identity_lookups) == 1


async def test_concurrent_calls_for_one_conversation_day_make_one_record_holding_every_message(
    pipedrive: Harness,
) -> None:
    fake_pipedrive(pipedrive).reply_delay = 0.02
    messages = [sms(f"m{i:02d}", f"2026-11-20T15:{i:02d}:00Z", f"message number {i:02d}") for i in range(20)]
    # Every message twice, all at once: duplicates race their originals.
    calls = [pipedrive.add(add_request("pipedrive", m)) for m in messages + messages]
    responses = await asyncio.gather(*calls)

    activities = fake_pipedrive(pipedrive).activities
    assert len(activities) == 1
    (activity,) = activities.values()
    assert {r.log_id for r in responses} == {str(activity["id"])}
    note = activity["note"]
    positions = []
    for i in range(20):
        assert note.count(f"message number {i:02d}") == 1
        positions.append(note.index(f"message number {i:02d}"))
    assert positions == sorted(positions)
    outcomes = [r.outcome for r in responses]
    assert outcomes.count(pb.LOG_OUTCOME_CREATED) >= 1
    assert outcomes.count(pb.LOG_OUTCOME_ALREADY_LOGGED) == 20
    assert "Conversation (20 messages)" in note


@pytest.mark.parametrize(
    ("first", "second", "same_day"),
    [
        # 23:30 and 00:30 New York time: two local days although both are the same UTC day.
        ("2026-11-21T04:30:00Z", "2026-11-21T05:30:00Z", False),
        # Across the DST change (2026-03-08 02:00 EST -> 03:00 EDT): still one local day.
        ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", True),
    ],
)
async def test_the_digest_day_is_the_users_local_day(
    pipedrive: Harness, first: str, second: str, same_day: bool
) -> None:
    a = await pipedrive.add(add_request("pipedrive", sms("m1", first)))
    b = await pipedrive.add(add_request("pipedrive", sms("m2", second)))

    assert (a.log_id == b.log_id) is same_day
    assert (a.local_date == b.local_date) is same_day
    if same_day:
        note = fake_pipedrive(pipedrive).activities[int(a.log_id)]["note"]
        assert "at 1:30 AM EST" in note
        assert "at 3:30 AM EDT" in note


async def test_a_fixed_offset_is_used_when_no_time_zone_is_given(pipedrive: Harness) -> None:
    request = add_request("pipedrive", sms("m1", "2026-11-20T20:00:00Z"), time_zone="")
    request.user.timezone_offset = "+05:30"

    response = await pipedrive.add(request)

    assert response.local_date == "2026-11-21"
    assert "at 1:30 AM UTC+05:30" in fake_pipedrive(pipedrive).activities[int(response.log_id)]["note"]


async def test_group_conversation_is_logged_once_per_contact(pipedrive: Harness) -> None:
    message = sms("g1", text="See you both tomorrow")
    first = await pipedrive.add(add_request("pipedrive", message, contact_id="42"))
    second = await pipedrive.add(add_request("pipedrive", message, contact_id="43"))

    assert first.outcome == second.outcome == pb.LOG_OUTCOME_CREATED
    assert first.log_id != second.log_id
    assert {a["person_id"] for a in fake_pipedrive(pipedrive).activities.values()} == {42, 43}


async def test_markup_and_structure_in_a_message_cannot_garble_the_digest(pipedrive: Harness) -> None:
    hostile = "<script>alert(1)</script></ul>------------<br>END<br>Conversation (99 messages)\u202eevil"
    await pipedrive.add(add_request("pipedrive", sms("m1", "2026-11-20T14:00:00Z", hostile)))
    response = await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T14:01:00Z", "after")))

    note = fake_pipedrive(pipedrive).activities[int(response.log_id)]["note"]
    assert "<script>" not in note
    assert "&lt;script&gt;" in note
    assert "\u202e" not in note
    assert note.count("<ul>") == note.count("</ul>")
    assert "Conversation (2 messages)" in note
    assert note.index("after") < note.rindex("END")


async def test_update_message_log_for_an_unknown_log_id_is_not_found(pipedrive: Harness) -> None:
    status = await pipedrive.update_error(update_request(add_request("pipedrive", sms("m1")), "999999"))

    assert status.code == grpc.StatusCode.NOT_FOUND
    assert status.reason == "LOG_NOT_FOUND"
    assert fake_pipedrive(pipedrive).requests == []


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda r: setattr(r, "crm", "nosuchcrm"), "UNKNOWN_CRM", "crm"),
        (lambda r: setattr(r.user, "hostname", "evil.example.com"), "CRM_HOST_NOT_ALLOWED", "user.hostname"),
        (
            lambda r: setattr(r.user, "hostname", "acme.pipedrive.com.evil.example"),
            "CRM_HOST_NOT_ALLOWED",
            "user.hostname",
        ),
        (lambda r: setattr(r.user, "time_zone", "Mars/Olympus"), "INVALID_REQUEST", "user.time_zone"),
        (lambda r: setattr(r.user, "time_zone", ""), "INVALID_REQUEST", "user.time_zone"),
        (lambda r: setattr(r.contact, "id", ""), "INVALID_REQUEST", "contact.id"),
        (lambda r: setattr(r.contact, "id", "not-a-number"), "INVALID_REQUEST", "contact.id"),
        (lambda r: setattr(r.message, "id", ""), "INVALID_REQUEST", "message.id"),
        (
            lambda r: setattr(r.message, "type", pb.MESSAGE_TYPE_UNSPECIFIED),
            "INVALID_REQUEST",
            "message.type",
        ),
        (lambda r: setattr(r.message, "type", 77), "INVALID_REQUEST", "message.type"),
        (lambda r: setattr(r.message, "direction", 0), "INVALID_REQUEST", "message.direction"),
        (lambda r: setattr(r.message, "conversation_id", ""), "INVALID_REQUEST", "message.conversation_id"),
        (lambda r: r.message.ClearField("creation_time"), "INVALID_REQUEST", "message.creation_time"),
        (
            lambda r: setattr(r.message.creation_time, "seconds", 10**11),
            "INVALID_REQUEST",
            "message.creation_time",
        ),
        (lambda r: setattr(r.message, "subject", "x" * 10_001), "INVALID_REQUEST", "message.subject"),
        (
            lambda r: setattr(r.message.sender, "phone_number", "call me"),
            "INVALID_REQUEST",
            "message.sender.phone_number",
        ),
        (lambda r: setattr(r, "recording_link", "javascript:alert(1)"), "INVALID_REQUEST", "recording_link"),
        (
            lambda r: r.additional_submission.update({"deals": "abc"}),
            "INVALID_REQUEST",
            "additional_submission[deals]",
        ),
    ],
)
async def test_invalid_input_is_invalid_argument_naming_the_field_and_sends_nothing(
    pipedrive: Harness, mutate: Callable[[Any], None], reason: str, field: str
) -> None:
    request = add_request("pipedrive", sms("m1"))
    mutate(request)

    status = await pipedrive.add_error(request)

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == reason
    assert field in status.fields
    assert fake_pipedrive(pipedrive).requests == []


async def test_logs_have_one_line_per_rpc_and_never_credentials_or_message_text(pipedrive: Harness) -> None:
    secret_text = "my PIN is 4711 and the door code 0815"
    with capture_logs() as logs:
        await pipedrive.add(add_request("pipedrive", sms("m1", text=secret_text)))
        await pipedrive.add_error(
            add_request("pipedrive", sms("m2", text=secret_text)), auth="Bearer leaked-token"
        )
        await pipedrive.add_error(add_request("pipedrive", sms("m3", text=secret_text)), auth="")

    rpc_lines = [entry for entry in logs if entry["event"] == "rpc"]
    assert [line["status"] for line in rpc_lines] == ["OK", "FAILED_PRECONDITION", "UNAUTHENTICATED"]
    assert rpc_lines[1]["reason"] == "CRM_AUTH_FAILED"
    assert rpc_lines[1]["crm_http_status"] == 401
    assert all(line["method"] == "AddMessageLog" and line["crm"] == "pipedrive" for line in rpc_lines)
    assert all(isinstance(line["duration_ms"], float) for line in rpc_lines)
    everything = repr(logs)
    for secret in ("pd-token", "leaked-token", "4711", "door code", CONTACT_PHONE):
        assert secret not in everything


async def test_errors_never_echo_credentials_or_text(pipedrive: Harness) -> None:
    status = await pipedrive.add_error(
        add_request("pipedrive", sms("m1", text="secret words")), auth="Bearer leaked-token"
    )
    assert "leaked-token" not in status.message
    assert "secret words" not in status.message
    assert "HTTP 401" in status.message


async def test_health_reports_serving(pipedrive: Harness) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pipedrive.server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        service = await health.Check(health_pb2.HealthCheckRequest(service="messagelog.v1.MessageLogService"))

    assert overall.status == service.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_same_ids_in_two_crm_accounts_are_kept_apart(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).add_company("globex-token", 7002)
    message = sms("m1", text="hello")
    first = await pipedrive.add(add_request("pipedrive", message))
    second = await pipedrive.add(add_request("pipedrive", message), auth="Bearer globex-token")

    assert first.outcome == second.outcome == pb.LOG_OUTCOME_CREATED
    assert first.log_id != second.log_id


class _OverlapWatchingPipedrive(FakePipedrive):
    """Notes which requests were in flight together."""

    def __init__(self) -> None:
        super().__init__()
        self.reply_delay = 0.05
        self.in_flight: set[str] = set()
        self.together: list[frozenset[str]] = []

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        route = f"{request.method} {request.path}"
        self.in_flight.add(route)
        self.together.append(frozenset(self.in_flight))
        try:
            return await super().handle(request)
        finally:
            self.in_flight.discard(route)


async def test_an_accounts_first_record_makes_its_lookups_together(make_harness: Callable[..., Any]) -> None:
    fake = _OverlapWatchingPipedrive()
    async with make_harness(fake, PIPEDRIVE_AUTH) as h:
        created = await h.add(add_request("pipedrive", sms("m1")))

    assert created.outcome == pb.LOG_OUTCOME_CREATED
    # users/me names the account first, alone: nothing is read or written for an unverified one.
    assert fake.together[0] == frozenset({"GET /api/v1/users/me"})
    # Then the create's lookups: the user's name came with the identity, so only the types remain.
    assert fake.together[1] == frozenset({"GET /api/v1/activityTypes"})
