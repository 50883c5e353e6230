"""Admission: a burst for one account waits for the CRM's capacity and is logged, never refused by
a count of calls; only a spent memory budget refuses, with RetryInfo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from structlog.testing import capture_logs

from service.limits import CALL_OVERHEAD_BYTES, PYTHON_BYTES_PER_WIRE_BYTE, AccountCapacity, CrmBudget
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails, add_request, sms

AUTH = "Bearer pd-token"


def burst(count: int) -> list[Any]:
    """count messages of one account, each in its own conversation."""
    return [
        add_request("pipedrive", sms(f"m{i}", conversation=f"conv-{i}"), user_name="A") for i in range(count)
    ]


class ConcurrencyCountingPipedrive(FakePipedrive):
    """Counts the requests it holds at once; while `gate` is clear, holds every one until it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            return await super().handle(request)
        finally:
            self.in_flight -= 1


async def test_a_burst_for_one_account_is_logged_within_its_crm_concurrency_not_refused(
    make_harness: Callable[..., Any],
) -> None:
    fake = ConcurrencyCountingPipedrive()
    fake.add_company("globex-token", 7002)
    fake.reply_delay = 0.05
    async with make_harness(fake, AUTH, MESSAGELOG_CRM_PIPEDRIVE_CONCURRENT_REQUESTS="3") as h:
        other = add_request("pipedrive", sms("other"), user_name="A")
        results = await asyncio.gather(
            *(h.add(r) for r in burst(40)), h.add(other, auth="Bearer globex-token")
        )

    assert [r.outcome for r in results] == [pb.LOG_OUTCOME_CREATED] * 41
    assert len(fake.activities) == 41
    # Two accounts: each at most 3 requests at once, however many calls wait.
    assert fake.most_in_flight <= 6


async def test_an_accounts_requests_stay_within_its_rate_in_every_window(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakePipedrive()
    async with make_harness(fake, AUTH, MESSAGELOG_CRM_PIPEDRIVE_RATE="4/0.5") as h:
        burst = [
            add_request("pipedrive", sms(f"m{i}", conversation=f"conv-{i}"), user_name="A") for i in range(10)
        ]
        results = await asyncio.gather(*(h.add(r) for r in burst))

    assert all(r.outcome == pb.LOG_OUTCOME_CREATED for r in results)
    sent = sorted(r.received_at for r in fake.requests)
    assert len(sent) >= 10
    # 4 per half second: the requests past the first 4 need a half second per 4 (less a little for
    # the trip from the limiter to the fake, which varies on a busy machine).
    assert sent[-1] - sent[0] >= (len(sent) - 4) // 4 * 0.5 - 0.15


async def test_no_sliding_window_holds_more_than_the_rate() -> None:
    capacity = AccountCapacity(CrmBudget(concurrent=100, requests=4, window_seconds=0.2))
    granted = []
    for _ in range(12):
        await capacity.acquire(None)
        granted.append(time.monotonic())
        capacity.release()
    for i, first in enumerate(granted):
        assert sum(1 for t in granted[i:] if t < first + 0.2) <= 4
    assert granted[-1] - granted[0] >= 0.4


async def test_a_slot_not_free_within_the_wait_is_a_timeout_holding_nothing() -> None:
    capacity = AccountCapacity(CrmBudget(1))
    await capacity.acquire(None)
    with pytest.raises(TimeoutError):
        await capacity.acquire(0.05)
    capacity.release()
    assert await capacity.acquire(0.05) < 0.05
    capacity.release()
    assert capacity.idle


async def test_only_a_spent_memory_budget_refuses_with_retry_info_and_an_rpc_line(
    make_harness: Callable[..., Any],
) -> None:
    budget = 1024 * 1024
    fake = ConcurrencyCountingPipedrive()
    fake.gate.clear()
    requests = [
        add_request("pipedrive", sms(f"m{i}", conversation=f"conv-{i}"), user_name="A") for i in range(80)
    ]
    cost = CALL_OVERHEAD_BYTES + PYTHON_BYTES_PER_WIRE_BYTE * requests[0].ByteSize()
    admitted = budget // cost
    assert admitted < len(requests)
    async with make_harness(fake, AUTH, MESSAGELOG_MAX_PENDING_BYTES=str(budget)) as h:
        with capture_logs() as logs:
            calls = [asyncio.ensure_future(h.add(r)) for r in requests]
            # Every call past the budget is answered while the admitted ones wait for the CRM.
            done: set[asyncio.Future[Any]] = set()
            while len(done) < len(requests) - admitted:
                finished, _ = await asyncio.wait(
                    [c for c in calls if c not in done], return_when=asyncio.FIRST_COMPLETED
                )
                done |= finished
            fake.gate.set()
            await asyncio.wait(calls)

    refused = [StatusDetails(c.exception()) for c in calls if isinstance(c.exception(), grpc.aio.AioRpcError)]
    assert len(refused) == len(requests) - admitted
    for status in refused:
        assert (status.code, status.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PENDING_WORK_LIMIT")
        assert status.retry_info is not None and status.retry_info.retry_delay.seconds == 1
    assert sum(1 for c in calls if c.exception() is None) == admitted
    lines = [e for e in logs if e["event"] == "rpc" and e.get("reason") == "PENDING_WORK_LIMIT"]
    assert len(lines) == len(refused)
