"""A flood of calls for one CRM account is refused at once, never queued, and loses nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from messagelog.v1 import message_log_pb2 as pb

from tests.conftest import Harness
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails, add_request, sms

AUTH = "Bearer pd-token"


async def _timed(h: Harness, request: Any, auth: str | None = None) -> tuple[float, int | StatusDetails]:
    started = time.monotonic()
    try:
        response = await h.add(request, auth=auth)
        return time.monotonic() - started, response.outcome
    except grpc.aio.AioRpcError as error:
        return time.monotonic() - started, StatusDetails(error)


async def test_a_flood_for_one_account_is_refused_at_once_and_other_accounts_go_on(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive()
    fake.add_company("globex-token", 7002)
    fake.reply_delay = 0.3
    async with make_harness(fake, AUTH, MESSAGELOG_MAX_CALLS_PER_ACCOUNT="4") as h:
        flood = [
            add_request("pipedrive", sms(f"m{i}", conversation=f"conv-{i}"), user_name="A") for i in range(30)
        ]
        other = add_request("pipedrive", sms("other"), user_name="A")
        results = await asyncio.gather(
            *(_timed(h, r) for r in flood), _timed(h, other, auth="Bearer globex-token")
        )

        refused = [(took, r) for took, r in results[:-1] if isinstance(r, StatusDetails)]
        accepted = [r for _, r in results[:-1] if not isinstance(r, StatusDetails)]
        assert len(accepted) == 4
        assert len(refused) == 26
        for took, status in refused:
            assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert status.reason == "ACCOUNT_CONCURRENCY_LIMIT"
            assert status.retry_info is not None
            assert status.retry_info.retry_delay.seconds == 1
            # Refused after the account's one identity lookup, not after waiting in line.
            assert took < 2 * fake.reply_delay
        assert results[-1][1] == pb.LOG_OUTCOME_CREATED  # another account is not held up

        # Nothing was half-done: retrying the refused calls logs every message once.
        for i, (_, result) in enumerate(results[:-1]):
            if isinstance(result, StatusDetails):
                assert (await h.add(flood[i])).outcome == pb.LOG_OUTCOME_CREATED
    assert len(fake.activities) == 31
