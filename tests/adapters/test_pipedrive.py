"""Pipedrive's quirks; the shared scenarios are in test_contract.py, edits in tests/test_edits.py and
lost creates in tests/test_ambiguous_create.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import Harness, fake_pipedrive
from tests.fakes.base import FakeRequest, Fault
from tests.fakes.pipedrive import PERSON_ID_READ_ONLY, FakePipedrive
from tests.helpers import add_request, sms

AUTH = "Bearer pd-token"
CREATE = r"^/api/v2/activities$"
# Yesterday, so every time of it is in the past and on one day in New York.
DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


def at(hh_mm: str) -> str:
    return f"{DAY}T{hh_mm}:00Z"


def creates(h: Harness) -> list[FakeRequest]:
    return fake_pipedrive(h).calls("POST", CREATE)


async def test_the_contact_is_the_primary_participant_never_a_top_level_person_id(
    pipedrive: Harness,
) -> None:
    response = await pipedrive.add(add_request("pipedrive", sms("m1", at("15:00"), "hello")))

    (create,) = creates(pipedrive)
    assert "person_id" not in create.body
    assert create.body["participants"] == [{"person_id": 42, "primary": True}]
    assert create.body["done"] is True
    # Pipedrive sets the activity's person from its primary participant.
    assert fake_pipedrive(pipedrive).activities[int(response.log_id)]["person_id"] == 42
    (identity,) = fake_pipedrive(pipedrive).identity_lookups
    assert identity.path == "/api/v1/users/me"


async def test_the_fake_refuses_a_top_level_person_id_as_the_v2_api_does() -> None:
    fake = FakePipedrive()
    async with fake.serve() as url, httpx.AsyncClient() as http:
        reply = await http.post(
            f"{url}/api/v2/activities",
            json={"subject": "x", "person_id": 42},
            headers={"Authorization": AUTH},
        )

    assert reply.status_code == 400
    assert reply.json() == {"success": False, "error": PERSON_ID_READ_ONLY, "code": "ERR_BAD_REQUEST"}
    assert fake.activities == {}


@pytest.mark.parametrize(
    ("kind", "types", "expected"),
    [
        (pb.MESSAGE_TYPE_SMS, [], "sms"),
        (pb.MESSAGE_TYPE_VOICEMAIL, [], "call"),
        (pb.MESSAGE_TYPE_FAX, [], "call"),
        (
            pb.MESSAGE_TYPE_VOICEMAIL,
            [
                {
                    "id": 20,
                    "name": "Voicemail",
                    "key_string": "voicemail1",
                    "icon_key": "sound",
                    "active_flag": True,
                }
            ],
            "voicemail1",
        ),
        (
            pb.MESSAGE_TYPE_FAX,
            [{"id": 21, "name": "Fax", "key_string": "fax", "icon_key": "document", "active_flag": True}],
            "fax",
        ),
        (
            pb.MESSAGE_TYPE_VOICEMAIL,
            [
                {
                    "id": 22,
                    "name": "Voicemail",
                    "key_string": "voicemail",
                    "icon_key": "sound",
                    "active_flag": False,
                }
            ],
            "call",
        ),
    ],
    ids=["sms", "voicemail-as-call", "fax-as-call", "voicemail-type", "fax-type", "inactive-voicemail-type"],
)
async def test_each_kind_gets_its_own_activity_type_or_the_call_type(
    make_harness: Callable[..., Any], kind: int, types: list[dict[str, Any]], expected: str
) -> None:
    fake = FakePipedrive()
    fake.activity_types.extend(types)
    async with make_harness(fake, AUTH) as crm:
        await crm.add(
            add_request(
                "pipedrive",
                sms("m1", at("15:00"), "", kind=kind),
                recording_link="https://media.example.com/vm1.mp3",
                fax_doc_link="https://media.example.com/fax1.pdf",
            )
        )

        (create,) = creates(crm)
    assert create.body["type"] == expected


async def test_an_account_without_an_active_sms_type_logs_sms_as_its_renamed_call_type(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive(sms_type_active=False)
    # The built-in call type deactivated, and a custom type with the call icon in its place.
    fake.activity_types[0]["active_flag"] = False
    fake.activity_types.append(
        {"id": 30, "name": "Phone", "key_string": "phone", "icon_key": "call", "active_flag": True}
    )
    async with make_harness(fake, AUTH) as crm:
        await crm.add(add_request("pipedrive", sms("m1", at("15:00"))))

        (create,) = creates(crm)
    assert create.body["type"] == "phone"


async def test_due_date_and_time_are_the_earliest_messages_even_when_it_arrives_later(
    pipedrive: Harness,
) -> None:
    created = await pipedrive.add(add_request("pipedrive", sms("m2", at("16:30"), "second")))
    await pipedrive.add(add_request("pipedrive", sms("m1", at("15:10"), "first")))
    await pipedrive.add(add_request("pipedrive", sms("m3", at("17:45"), "third")))

    (create,) = creates(pipedrive)
    assert (create.body["due_date"], create.body["due_time"]) == (DAY, "16:30")
    patches = fake_pipedrive(pipedrive).calls("PATCH")
    assert [(p.body["due_date"], p.body["due_time"]) for p in patches] == [(DAY, "15:10"), (DAY, "15:10")]
    activity = fake_pipedrive(pipedrive).activities[int(created.log_id)]
    assert (activity["due_date"], activity["due_time"]) == (DAY, "15:10")


async def test_a_kept_edit_keeps_the_earliest_time(pipedrive: Harness) -> None:
    created = await pipedrive.add(add_request("pipedrive", sms("m1", at("15:10"), "first")))
    activity = fake_pipedrive(pipedrive).activities[int(created.log_id)]
    activity["note"] = "Called back, all settled. (Alice)"
    await pipedrive.add(add_request("pipedrive", sms("m2", at("16:30"), "second")))

    assert "Called back, all settled." in activity["note"]
    assert (activity["due_date"], activity["due_time"]) == (DAY, "15:10")


async def test_a_lost_create_is_looked_for_among_the_persons_recent_activities(
    make_harness: Callable[..., Any],
) -> None:
    settle = 0.5
    async with make_harness(
        FakePipedrive(), AUTH, MESSAGELOG_CRM_TIMEOUT="0.5", MESSAGELOG_CREATE_SETTLE_SECONDS=str(settle)
    ) as crm:
        crm.fake.inject(Fault(drop_connection=True, method="POST", path_pattern=CREATE, after_effect=True))
        await crm.add_error(add_request("pipedrive", sms("m1", at("15:00"))))
        await asyncio.sleep(settle)
        retry = await crm.add(add_request("pipedrive", sms("m1", at("15:00"))))

        (find,) = fake_pipedrive(crm).calls("GET", CREATE)
    assert retry.log_id == str(next(iter(fake_pipedrive(crm).activities)))
    assert len(creates(crm)) == 1
    assert find.query.keys() == {"person_id", "updated_since", "limit"}
    assert (find.query["person_id"], find.query["limit"]) == ("42", "500")
    assert datetime.fromisoformat(find.query["updated_since"]) < datetime.now(UTC)
