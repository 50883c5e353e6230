"""Input limits: each gets a precise status, never a crash or an unbounded allocation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from service.validation import MAX_ATTACHMENTS, MAX_REQUEST_BYTES, MAX_REQUEST_BYTES_RECEIVED, MAX_TEXT_CHARS
from tests.conftest import Harness
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

AUTH = "Bearer pd-token"


@pytest.fixture
async def pipedrive(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakePipedrive(), AUTH) as harness:
        yield harness


async def test_a_request_over_the_size_limit_has_its_reason(pipedrive: Harness) -> None:
    request = add_request("pipedrive", sms("m1"))
    request.message.recipients.extend(pb.Party(name="x" * 200) for _ in range(MAX_REQUEST_BYTES // 200))

    status = await pipedrive.add_error(request)

    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.reason == "REQUEST_TOO_LARGE"
    assert pipedrive.fake.requests == []


async def test_a_request_too_large_to_receive_is_refused_by_grpc_and_the_server_goes_on(
    pipedrive: Harness,
) -> None:
    request = add_request("pipedrive", sms("m1"))
    request.message.recipients.extend(
        pb.Party(name="x" * 200) for _ in range(MAX_REQUEST_BYTES_RECEIVED // 200)
    )

    refused = await pipedrive.add_error(request)
    logged = await pipedrive.add(add_request("pipedrive", sms("m2")))

    assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert logged.outcome == pb.LOG_OUTCOME_CREATED


async def test_text_over_the_limit_is_invalid_argument(pipedrive: Harness) -> None:
    ok = await pipedrive.add(add_request("pipedrive", sms("m1", text="x" * MAX_TEXT_CHARS)))
    status = await pipedrive.add_error(add_request("pipedrive", sms("m2", text="x" * (MAX_TEXT_CHARS + 1))))

    assert ok.outcome == pb.LOG_OUTCOME_CREATED
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"message.subject"}


async def test_too_many_attachments_is_invalid_argument(pipedrive: Harness) -> None:
    request = add_request("pipedrive", sms("m1"))
    request.message.attachments.extend(
        pb.Attachment(content_type="image/png", link="https://example.com/a.png")
        for _ in range(MAX_ATTACHMENTS + 1)
    )

    status = await pipedrive.add_error(request)

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"message.attachments"}
    assert pipedrive.fake.requests == []
