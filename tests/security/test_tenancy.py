"""Tenancy: an account is who the CRM says a credential belongs to, never what the caller asserts.

Issue 12, items 1-4, each as an attacker would try it against the real server:
1. ride-along: a call with a credential the CRM refuses, naming another account's ids, must not
   get its text written into that account's record by the account's next writer;
2. shared hosts: a valid token of *another* HubSpot portal, with the victim's ids, must not get
   the victim's day re-created in its own portal;
3. oracle: a refused credential learns nothing: not ALREADY_LOGGED, not a log id, and not which
   record ids exist (one error for "not yours" and "not found");
4. freeze: a refused credential with a short deadline must not hold the victim's digest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import Harness, fake_pipedrive
from tests.fakes.base import FakeRequest, FakeResponse
from tests.fakes.hubspot import FakeHubspot
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails, add_request, sms, update_request

VICTIM = "Bearer pd-token"
REFUSED = "Bearer junk"
ATTACK_TEXT = "please pay invoice 4471 to IBAN XX00 9999"


def at(minutes_ago: float) -> str:
    """A creation time `minutes_ago` before yesterday's 14:00 UTC: one local day in New York for
    every minute these tests use, whenever they run."""
    anchor = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return (anchor - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def victims(message_id: str, minutes_ago: float, text: str = "ordinary message", **kw: Any) -> Any:
    """A message into the victim's Pipedrive record: its host, user, contact and conversation."""
    return add_request("pipedrive", sms(message_id, at(minutes_ago), text, **kw))


def notes(h: Harness) -> str:
    return "\n".join(str(a.get("note", "")) for a in fake_pipedrive(h).activities.values())


async def test_1_a_refused_credential_never_rides_along_with_the_accounts_next_write(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive()
    fake.reply_delay = 0.05  # the victim's writes take a while: the window the attacker aims at
    async with make_harness(fake, VICTIM) as h:
        await h.add(victims("v0", 30))

        async def attack(n: int) -> None:
            request = victims(f"evil-{n}", 29, ATTACK_TEXT, inbound=False)
            with pytest.raises(grpc.aio.AioRpcError):
                await h.add(request, auth=REFUSED, timeout=3)

        async def victim_logs() -> None:
            for n in range(1, 4):
                await h.add(victims(f"v{n}", 28 - n))

        attacks = []
        for n in range(20):  # 10 a second, while the account logs three ordinary messages
            attacks.append(asyncio.create_task(attack(n)))
            if n == 2:
                attacks.append(asyncio.create_task(victim_logs()))
            await asyncio.sleep(0.1)
        await asyncio.gather(*attacks)
        written = notes(h)

    assert "ordinary message" in written
    assert "IBAN" not in written


class TwoPortalHubspot(FakeHubspot):
    """HubSpot's one API host serving two portals, each with its own token and records.

    A record id is a portal's: a PATCH of another portal's record is 404 (HubSpot answers
    OBJECT_NOT_FOUND for an id the token's portal does not hold). GET /account-info/v3/details
    names the token's portal (portalId), as documented at
    https://developers.hubspot.com/docs/api-reference/latest/account/account-information/get-account-details
    """

    PORTALS: ClassVar[dict[str, int]] = {"hs-victim": 4001, "hs-other": 4002}

    def __init__(self) -> None:
        super().__init__(token="hs-victim")
        self.by_portal: dict[int, dict[str, dict[str, Any]]] = {p: {} for p in self.PORTALS.values()}

    def _portal(self, request: FakeRequest) -> int | None:
        return self.PORTALS.get(request.headers.get("authorization", "").removeprefix("Bearer "))

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        portal = self._portal(request)
        if portal is None:
            return super().authorize(request)
        return super().authorize(
            FakeRequest(
                request.method, request.path, request.query, {"authorization": "Bearer hs-victim"}, None
            )
        )

    @contextmanager
    def _in_portal(self, request: FakeRequest) -> Iterator[None]:
        portal = self._portal(request)
        assert portal is not None  # authorize() refused the others
        self.communications = self.by_portal[portal]
        yield

    def _create(self, request: FakeRequest) -> FakeResponse:
        with self._in_portal(request):
            return super()._create(request)

    def _patch(self, request: FakeRequest, communication_id: str) -> FakeResponse:
        with self._in_portal(request):
            return super()._patch(request, communication_id)

    def _account_details(self, request: FakeRequest) -> FakeResponse:
        answer = super()._account_details(request)
        answer.body["portalId"] = self._portal(request)
        return answer


def hubspot_message(message_id: str, minutes_ago: float, text: str) -> Any:
    return add_request("hubspot", sms(message_id, at(minutes_ago), text), hostname="api.hubapi.com")


async def test_2_another_portals_token_never_gets_the_victims_day(make_harness: Callable[..., Any]) -> None:
    fake = TwoPortalHubspot()
    async with make_harness(fake, "Bearer hs-victim") as h:
        await h.add(hubspot_message("v1", 30, "victim line one"))
        await h.add(hubspot_message("v2", 20, "victim line two"))
        # Same user, contact and conversation ids; a valid token, but of the other portal.
        # Refusing it is fine too; what matters is what each portal holds afterwards.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await h.add(hubspot_message("o1", 10, "other portal line"), auth="Bearer hs-other")

    victim_records = list(fake.by_portal[4001].values())
    other_records = list(fake.by_portal[4002].values())
    other_text = " ".join(r["properties"].get("hs_communication_body", "") for r in other_records)
    assert "victim line" not in other_text
    assert len(victim_records) == 1
    victim_text = victim_records[0]["properties"]["hs_communication_body"]
    assert "other portal line" not in victim_text


async def test_3_a_refused_credential_resending_a_known_message_learns_nothing(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakePipedrive(), VICTIM) as h:
        logged = await h.add(victims("v1", 30))
        calls_before = len(h.fake.requests) + len(h.fake.identity_lookups)
        status = await h.add_error(victims("v1", 30), auth=REFUSED)
        calls_after = len(h.fake.requests) + len(h.fake.identity_lookups)

    assert logged.outcome == pb.LOG_OUTCOME_CREATED
    assert status.code != grpc.StatusCode.OK
    assert logged.log_id not in status.message
    assert status.reason == "CRM_AUTH_FAILED"
    # The answer came from the CRM refusing the credential, not from the store.
    assert calls_after > calls_before


async def test_3_a_refused_credential_cannot_tell_which_record_ids_exist(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakePipedrive(), VICTIM) as h:
        logged = await h.add(victims("v1", 30))
        existing = await h.update_error(update_request(victims("u1", 20), logged.log_id), auth=REFUSED)
        missing = await h.update_error(update_request(victims("u2", 20), "987654"), auth=REFUSED)
        # The account's own credential: a log id it never made is not found; its own is appended to.
        own_missing = await h.update_error(update_request(victims("u3", 20), "987654"))

    def shape(status: StatusDetails) -> tuple[grpc.StatusCode, str]:
        return status.code, status.reason

    assert shape(existing) == shape(missing)
    assert existing.message.replace(logged.log_id, "987654") == missing.message
    assert shape(existing) != (grpc.StatusCode.NOT_FOUND, "LOG_NOT_FOUND")
    assert own_missing.code == grpc.StatusCode.NOT_FOUND


async def test_4_a_refused_credential_with_a_short_deadline_does_not_freeze_the_day(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive()
    async with make_harness(fake, VICTIM) as h:
        await h.add(victims("v1", 30))
        fake.reply_delay = 0.2  # longer than the attacker's deadline: its request gets no answer
        with pytest.raises(grpc.aio.AioRpcError):
            await h.add(victims("evil", 25, ATTACK_TEXT), auth=REFUSED, timeout=0.06)
        await asyncio.sleep(0.3)  # the attacker's request has reached the CRM and been refused
        fake.reply_delay = 0.0

        appended = await h.add(victims("v2", 20), timeout=5)
        written = notes(h)

    assert appended.outcome == pb.LOG_OUTCOME_APPENDED
    assert "IBAN" not in written
