"""Health Watch streams: authenticated like every RPC when callers authenticate, and capped.

Issue 12, item 6: 9,000 idle Watch streams from anyone who reached the port held 291 MB. Check
stays open (probes and load balancers call it without credentials); a Watch holds a stream and
memory for as long as the caller likes, so it is the caller's, counted against a cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import dial
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails
from tests.security.conftest import CALLER_TOKEN, bearer

AUTH = "Bearer pd-token"
SERVING = health_pb2.HealthCheckResponse.SERVING


async def first_status(stream: Any) -> int:
    """The first status a Watch stream sends (the current one), within 5 seconds."""
    async with asyncio.timeout(5):
        reply: health_pb2.HealthCheckResponse = await stream.read()
    return reply.status


async def refusal(stream: Any) -> StatusDetails:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await first_status(stream)
    return StatusDetails(raised.value)


async def test_watch_needs_the_callers_token_when_callers_authenticate(
    make_harness: Callable[..., Any], tokens_file: Path
) -> None:
    async with (
        make_harness(FakePipedrive(), AUTH, MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file)) as h,
        dial(h.server.port) as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        anonymous = health.Watch(health_pb2.HealthCheckRequest())
        wrong = health.Watch(health_pb2.HealthCheckRequest(), metadata=bearer("not-a-token"))
        known = health.Watch(health_pb2.HealthCheckRequest(), metadata=bearer(CALLER_TOKEN))
        check = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)

        refused = [await refusal(anonymous), await refusal(wrong)]
        watched = await first_status(known)
        known.cancel()

    assert [(r.code, r.reason) for r in refused] == [
        (grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED")
    ] * 2
    assert watched == SERVING
    assert check.status == SERVING  # probes keep calling Check without credentials


@pytest.fixture
async def two_watches_allowed(make_harness: Callable[..., Any]) -> AsyncIterator[grpc.aio.Channel]:
    async with (
        make_harness(FakePipedrive(), AUTH, MESSAGELOG_MAX_HEALTH_WATCHES="2") as h,
        dial(h.server.port) as channel,
    ):
        yield channel


async def test_watch_streams_beyond_the_cap_are_resource_exhausted_until_one_ends(
    two_watches_allowed: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(two_watches_allowed)
    async with AsyncExitStack() as streams:
        held = [health.Watch(health_pb2.HealthCheckRequest()) for _ in range(2)]
        for stream in held:
            streams.callback(stream.cancel)
            assert await first_status(stream) == SERVING

        over = await refusal(health.Watch(health_pb2.HealthCheckRequest()))
        check = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)

        held[0].cancel()
        # The server sees the cancellation shortly after; a new stream then takes the freed place.
        async with asyncio.timeout(5):
            while True:
                again = health.Watch(health_pb2.HealthCheckRequest())
                streams.callback(again.cancel)
                try:
                    assert await first_status(again) == SERVING
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)

    assert (over.code, over.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "HEALTH_WATCH_LIMIT")
    assert over.retry_info is not None
    assert check.status == SERVING  # Check is never counted against the cap
