"""Health follows the store: NOT_SERVING while the database does not answer, SERVING once it does."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from messagelog.v1 import message_log_pb2 as pb

from service.server import SERVICE_NAME
from tests.conftest import POSTGRES_URL, Harness, dial
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

AUTH = "Bearer pd-token"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Pinged this often, the flips below show within a second.
FAST_CHECKS = {"MESSAGELOG_HEALTH_CHECK_SECONDS": "0.1"}


async def statuses(h: Harness) -> tuple[int, int]:
    """What the server reports for itself ("", liveness) and for the service (readiness)."""
    async with dial(h.server.port) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        server, service = [
            (await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
            for name in ("", SERVICE_NAME)
        ]
        return server, service


async def becomes(h: Harness, status: int) -> None:
    """The service reaches `status` while the server itself stays SERVING (the process is alive)."""
    async with asyncio.timeout(5):
        while True:
            if await statuses(h) == (SERVING, status):
                return
            await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_health_follows_a_postgresql_store_that_goes_away_and_comes_back(
    pg_url: str, make_harness: Callable[..., Any]
) -> None:
    database = pg_url.rpartition("/")[2]
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    async with make_harness(FakePipedrive(), AUTH, MESSAGELOG_DATABASE_URL=pg_url, **FAST_CHECKS) as h:
        try:
            assert await statuses(h) == (SERVING, SERVING)
            # Refuse new connections and end the open ones: every SELECT 1 now fails.
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
            )
            await becomes(h, NOT_SERVING)
            refused = await h.add_error(add_request("pipedrive", sms("m1")))
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
        await becomes(h, SERVING)
        logged = await h.add(add_request("pipedrive", sms("m1")))

    assert refused.reason == "STORE_UNAVAILABLE"
    assert logged.outcome == pb.LOG_OUTCOME_CREATED


async def test_a_store_that_hangs_is_not_serving_until_it_answers(
    make_harness: Callable[..., Any], tmp_path: Path
) -> None:
    async with make_harness(FakePipedrive(), AUTH, **FAST_CHECKS) as h:
        assert await statuses(h) == (SERVING, SERVING)
        # Another process holding SQLite's write lock: the store can't take a single write.
        other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            await becomes(h, NOT_SERVING)
            # The server itself goes on answering while its store waits (it never blocks on a lock).
            assert (await statuses(h))[0] == SERVING
        finally:
            other.execute("ROLLBACK")
            other.close()
        await becomes(h, SERVING)
        logged = await h.add(add_request("pipedrive", sms("m1")))
    assert logged.outcome == pb.LOG_OUTCOME_CREATED
