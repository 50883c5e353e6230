"""generic: our own small protocol (service/adapters/generic.py, README "generic"): the document
sent, the record read back before an append, and a lost create found by its ref."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.generic import FakeGeneric
from tests.helpers import add_request, sms

AUTH = "Bearer generic-token"


@pytest.fixture
async def generic(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeGeneric(), AUTH) as harness:
        yield harness


def request(message: pb.Message) -> Any:
    return add_request("generic", message, hostname="crm.internal.example")


def activity(h: Harness, log_id: str) -> dict[str, Any]:
    assert isinstance(h.fake, FakeGeneric)
    return h.fake.activities[log_id]


async def test_create_posts_the_document_with_its_ref_and_an_append_reads_then_puts(generic: Harness) -> None:
    created = await generic.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    (create,) = generic.fake.requests
    await generic.add(request(sms("m2", "2026-11-20T15:05:00Z", "second")))
    read, put = generic.fake.requests[1:]

    assert (create.method, create.path) == ("POST", "/activity")
    ref = create.body["ref"]
    assert ref and f"(ref {ref})" in create.body["body"]
    assert (read.method, read.path, put.method, put.path) == (
        "GET",
        f"/activity/{created.log_id}",
        "PUT",
        f"/activity/{created.log_id}",
    )
    assert put.body["ref"] == ref and put.body["message_count"] == 2
    assert generic.fake.identity_lookups == []  # the protocol has no identity call


async def test_a_persons_edit_of_the_body_is_kept(generic: Harness) -> None:
    created = await generic.add(request(sms("m1", "2026-11-20T15:00:00Z", "first")))
    edited = "Summary typed in the in-house CRM."
    generic.fake.edit_record(created.log_id, edited)

    await generic.add(request(sms("m2", "2026-11-20T15:05:00Z", "second")))

    body = activity(generic, created.log_id)["body"]
    assert body.startswith(edited) and "second" in body and "first" not in body


async def test_a_lost_create_is_found_by_its_ref(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeGeneric(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS)) as crm:
        retry = await lose_create_then_retry(
            crm, request(sms("m1", text="first words")), "POST", r"^/activity$"
        )
        (log_id,) = crm.fake.record_ids()

    _, find, written = crm.fake.requests
    assert (find.method, find.path, find.query) == ("GET", "/activity", {"ref": activity(crm, log_id)["ref"]})
    assert (written.method, written.path) == ("PUT", f"/activity/{log_id}")
    assert retry.log_id == log_id and crm.fake.record_ids() == [log_id]
    assert activity(crm, log_id)["body"].count("first words") == 1
