"""A create the CRM applied but whose reply was lost, as the per-CRM tests stage it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

from tests.conftest import Harness
from tests.fakes.base import FakeCrm, Fault

# How long the service waits for an unanswered create to settle before it looks for its record.
SETTLE_SECONDS = 0.3


def harness_that_settles(make_harness: Callable[..., Any], fake: FakeCrm, auth: str) -> Any:
    """A harness whose unanswered creates settle quickly, with one attempt per request."""
    harness: AbstractAsyncContextManager[Harness] = make_harness(
        fake,
        auth,
        MESSAGELOG_CREATE_SETTLE_SECONDS=str(SETTLE_SECONDS),
        MESSAGELOG_CRM_MAX_ATTEMPTS="1",
    )
    return harness


async def lose_create_reply(crm: Harness, request: Any, create_path: str) -> None:
    """Sends `request`, whose create the CRM applies and answers with a 500, then waits for it
    to settle: the service cannot know whether the record was made."""
    crm.fake.inject(
        Fault(status=500, body={"error": "lost"}, method="POST", path_pattern=create_path, after_effect=True)
    )
    status = await crm.add_error(request)
    assert status.code == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(SETTLE_SECONDS)
