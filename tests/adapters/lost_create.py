"""A create the CRM applies but whose answer is lost, then the caller's retry: for the per-CRM tests
of what an adapter sends to find that record (the contract suite checks the outcome for all)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from messagelog.v1 import message_log_service_pb2 as service_pb

from tests.conftest import Harness
from tests.fakes.base import Fault

# The harness of these tests runs with MESSAGELOG_CREATE_SETTLE_SECONDS=SETTLE_SECONDS.
SETTLE_SECONDS = 0.2


async def lose_create_then_retry(
    crm: Harness, request: service_pb.AddMessageLogRequest, method: str, path_pattern: str
) -> Any:
    """Sends `request` while the CRM applies its create and drops the answer, then retries it
    until the lost write has settled; returns the retry's answer."""
    crm.fake.inject(Fault(drop_connection=True, method=method, path_pattern=path_pattern, after_effect=True))
    await crm.add_error(request)
    for _ in range(20):
        try:
            return await crm.add(request)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            await asyncio.sleep(SETTLE_SECONDS)
    raise AssertionError("the digest was still held after 20 settle windows")
