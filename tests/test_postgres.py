"""The store on PostgreSQL: the core flow, and several server processes sharing one database.

These run wherever PostgreSQL answers at MESSAGELOG_TEST_POSTGRES_URL (default: the CI machine's
postgres@127.0.0.1:5432/test). Under CI they fail when it doesn't answer; elsewhere they skip,
saying why.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from tests.conftest import TEST_STORE_KEY
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

pytestmark = pytest.mark.postgres

AUTH = (("crm-authorization", "Bearer pd-token"),)


async def test_the_core_flow_on_postgresql(pg_url: str, make_harness: Callable[..., Any]) -> None:
    fake = FakePipedrive()
    async with make_harness(fake, "Bearer pd-token", MESSAGELOG_DATABASE_URL=pg_url) as h:
        outcomes = [
            (
                await h.add(add_request("pipedrive", sms(f"m{i}", f"2026-11-20T15:0{i}:00Z", f"text {i}")))
            ).outcome
            for i in range(3)
        ]
        repeated = await h.add(add_request("pipedrive", sms("m1", "2026-11-20T15:01:00Z", "text 1")))

    assert outcomes == [pb.LOG_OUTCOME_CREATED, pb.LOG_OUTCOME_APPENDED, pb.LOG_OUTCOME_APPENDED]
    assert repeated.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert len(fake.activities) == 1


async def _start_server(env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", cwd=cwd, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    while True:
        line = await asyncio.wait_for(process.stderr.readline(), timeout=60)
        assert line, "server exited before it started"
        event = json.loads(line)
        if event["event"] == "server_started":
            return process, int(event["port"])


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stderr is not None
    while await process.stderr.readline():
        pass


async def test_two_processes_on_one_database_make_one_digest_per_conversation_day(
    pg_url: str, tmp_path: Path
) -> None:
    fake = FakePipedrive()
    fake.reply_delay = 0.02  # long enough for calls on both processes to overlap
    async with fake.serve() as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
        env.update(
            {
                "MESSAGELOG_PORT": "0",
                "MESSAGELOG_DATABASE_URL": pg_url,
                "MESSAGELOG_STORE_KEY": TEST_STORE_KEY,
                "MESSAGELOG_LOG_FORMAT": "json",
                "MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url,
            }
        )
        # Started together, so they also race to migrate the empty database.
        servers = await asyncio.gather(_start_server(env, tmp_path), _start_server(env, tmp_path))
        drains = [asyncio.create_task(_drain(process)) for process, _ in servers]
        try:
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _, port in servers]
            stubs = [service_grpc.MessageLogServiceStub(channel) for channel in channels]
            conversations = ["conv-a", "conv-b", "conv-c"]
            messages = [
                sms(
                    f"{conv}-{i:02d}", f"2026-11-20T15:{i:02d}:00Z", f"{conv} line {i:02d}", conversation=conv
                )
                for conv in conversations
                for i in range(12)
            ]
            # Each message goes to both processes at once.
            calls = [
                stub.AddMessageLog(add_request("pipedrive", m), metadata=AUTH, timeout=30)
                for m in messages
                for stub in stubs
            ]
            responses = await asyncio.gather(*calls)
            for channel in channels:
                await channel.close()
        finally:
            for process, _ in servers:
                process.terminate()
            for process, _ in servers:
                assert await asyncio.wait_for(process.wait(), timeout=30) == 0
            await asyncio.gather(*drains)

    assert len(fake.activities) == len(conversations)
    notes = [activity["note"] for activity in fake.activities.values()]
    for conv in conversations:
        (note,) = [n for n in notes if f"{conv} line 00" in n]
        positions = [note.index(f"{conv} line {i:02d}") for i in range(12)]
        assert positions == sorted(positions)
        assert all(note.count(f"{conv} line {i:02d}") == 1 for i in range(12))
        assert "Conversation (12 messages)" in note
    outcomes = [r.outcome for r in responses]
    assert outcomes.count(pb.LOG_OUTCOME_ALREADY_LOGGED) == len(messages)
    assert len(fake.calls("POST", "/api/v2/activities")) == len(conversations)
