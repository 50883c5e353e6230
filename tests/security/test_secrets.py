"""Secrets and privacy, through the real server: no log line, status message or status detail
ever carries a credential, a caller token or message text, whichever way the call ends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb
from structlog.testing import capture_logs

from service.privacy import phone_for_log
from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import CONTACT_PHONE, USER_PHONE, add_request, sms, update_request
from tests.security.conftest import CALLER_TOKEN, bearer

CRM_TOKEN = "pd-secret-7f3a9c"
CRM_AUTH = f"Bearer {CRM_TOKEN}"
TEXT = "my PIN is 4711 and the door code 0815"
WRONG_TOKEN = "stolen-token-5be21c"
SECRETS = (CRM_AUTH, CRM_TOKEN, CALLER_TOKEN, WRONG_TOKEN, TEXT, "PIN is 4711", CONTACT_PHONE, USER_PHONE)


def echo_of_request(status: int, **headers: str) -> Fault:
    """A CRM error reply that quotes back everything it was sent, as some CRMs do."""
    return Fault(
        status=status,
        body={"error": f"bad request: {TEXT} from {CONTACT_PHONE}", "authorization": CRM_AUTH},
        headers={"X-Echo-Authorization": CRM_AUTH, **headers},
        method="POST",
    )


async def every_ending(h: Harness, outcomes: list[str]) -> list[str]:
    """Runs a call down each path and returns everything the caller got back."""
    seen: list[str] = []

    async def fails(request: Any, **kw: Any) -> None:
        call = h.update if isinstance(request, service_pb.UpdateMessageLogRequest) else h.add
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request, **kw)
        error = raised.value
        seen.extend([error.details() or "", repr(error.trailing_metadata()), repr(error.initial_metadata())])
        outcomes.append(error.code().name)

    created = await h.add(add_request("pipedrive", sms("m1", text=TEXT)))
    appended = await h.add(add_request("pipedrive", sms("m2", "2026-11-20T15:01:00Z", text=TEXT)))
    again = await h.add(add_request("pipedrive", sms("m1", text=TEXT)))
    seen.extend(repr(r) for r in (created, appended, again))
    outcomes.extend(["OK"] * 3)
    for n, fault in enumerate(
        [
            echo_of_request(400),
            echo_of_request(401),
            echo_of_request(404),
            echo_of_request(429, **{"Retry-After": "60"}),
            echo_of_request(500),
            Fault(status=200, malformed=True, method="POST"),
            Fault(drop_connection=True, method="POST"),
            Fault(delay=1.0, method="POST"),
        ]
    ):
        h.fake.inject(fault)
        await fails(add_request("pipedrive", sms(f"f{n}", text=TEXT), contact_id=str(100 + n)))
    await fails(add_request("pipedrive", sms("f-auth", text=TEXT)), auth="")
    bad = add_request("pipedrive", sms("f-bad", text=TEXT + "x" * 10_000))
    bad.contact.phone_number = TEXT
    await fails(bad)
    await fails(update_request(add_request("pipedrive", sms("f-upd", text=TEXT)), "999"))
    stranger = Harness(h.stub, h.fake, h.server, CRM_AUTH, bearer(WRONG_TOKEN))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stranger.add(add_request("pipedrive", sms("f-caller", text=TEXT)))
    seen.extend([raised.value.details() or "", repr(raised.value.trailing_metadata())])
    outcomes.append(raised.value.code().name)
    return seen


async def test_no_secret_or_message_text_in_logs_statuses_or_details(
    make_harness: Callable[..., Any], tokens_file: Path
) -> None:
    outcomes: list[str] = []
    with capture_logs() as logs:
        async with make_harness(
            FakePipedrive(token=CRM_TOKEN),
            CRM_AUTH,
            extra_metadata=bearer(CALLER_TOKEN),
            MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file),
            MESSAGELOG_CRM_MAX_ATTEMPTS="1",
            MESSAGELOG_CRM_TIMEOUT="0.3",
        ) as h:
            seen = await every_ending(h, outcomes)
            stored = h.fake.activities

    # Every path was taken: the test proves nothing about a path that did not run.
    assert outcomes == [
        "OK",
        "OK",
        "OK",
        "FAILED_PRECONDITION",
        "FAILED_PRECONDITION",
        "NOT_FOUND",
        "UNAVAILABLE",
        "UNAVAILABLE",
        "INTERNAL",
        "UNAVAILABLE",
        "UNAVAILABLE",
        "UNAUTHENTICATED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "UNAUTHENTICATED",
    ]
    reasons = [line.get("reason") for line in logs if line["event"] == "rpc"]
    assert "CRM_TIMEOUT" in reasons
    assert "CRM_REJECTED" in reasons
    assert "CALLER_UNAUTHENTICATED" in reasons
    # The text did reach the CRM, so its absence below is not for want of handling it.
    assert any(TEXT in activity["note"] for activity in stored.values())
    everything = repr(logs) + "".join(seen)
    for secret in SECRETS:
        assert secret not in everything


@pytest.mark.parametrize(("setting", "shown"), [(None, "+1650***3204"), ("full", CONTACT_PHONE)])
async def test_the_rpc_line_shows_the_contact_phone_masked_unless_set_to_full(
    make_harness: Callable[..., Any], setting: str | None, shown: str
) -> None:
    extra = {"MESSAGELOG_LOG_PHONE_NUMBERS": setting} if setting else {}
    with capture_logs() as logs:
        async with make_harness(FakePipedrive(token=CRM_TOKEN), CRM_AUTH, **extra) as h:
            response = await h.add(add_request("pipedrive", sms("m1")))

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    (line,) = [entry for entry in logs if entry["event"] == "rpc"]
    assert line["contact_phone"] == shown


@pytest.mark.parametrize(
    ("number", "masked", "full"),
    [
        ("+16505553204", "+1650***3204", "+16505553204"),
        ("+4930123456789", "+4930***6789", "+4930123456789"),
        ("5551234", "***34", "5551234"),  # too short to show both ends
        ("", "", ""),
        ("my PIN is 4711", "invalid", "invalid"),  # not a number: never echoed
    ],
)
def test_phone_numbers_are_masked_or_shown_as_set(number: str, masked: str, full: str) -> None:
    assert phone_for_log(number, "masked") == masked
    assert phone_for_log(number, "full") == full
