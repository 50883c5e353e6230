"""The README's grpcurl commands, taken from the README itself, run with the real grpcurl binary
against the real server, so the README cannot go stale."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from messagelog.v1 import message_log_service_pb2 as service_pb

from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive

ROOT = Path(__file__).resolve().parent.parent
GRPCURL = Path(sys.executable).parent / "grpcurl"
README_TARGET = "localhost:50051"


def readme_grpcurl() -> tuple[list[list[str]], dict[str, Any]]:
    """The grpcurl commands of the README's 'Calling it' section, and the reply it shows."""
    section = (ROOT / "README.md").read_text().split("## Calling it", 1)[1].split("\n## ", 1)[0]
    bash = re.search(r"With grpcurl.*?```bash\n(.*?)```", section, re.DOTALL)
    reply = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert bash and reply, "the README shows grpcurl commands and the reply"
    split: list[list[str]] = []
    for word in shlex.split(bash.group(1), comments=True):
        if word == "grpcurl":
            split.append([])
        else:
            split[-1].append(word)
    return split, json.loads(reply.group(1))


COMMANDS, REPLY = readme_grpcurl()


def readme_inspection() -> tuple[list[list[str]], list[dict[str, Any]]]:
    """The grpcurl commands of the README's 'What happened to a message' section, and its replies."""
    section = (ROOT / "README.md").read_text().split("## What happened to a message", 1)[1]
    section = section.split("\n## ", 1)[0]
    bash = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert bash, "the README shows the inspection commands"
    split: list[list[str]] = []
    for word in shlex.split(bash.group(1), comments=True):
        if word == "grpcurl":
            split.append([])
        else:
            split[-1].append(word)
    replies = [json.loads(r) for r in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]
    return split, replies


INSPECTIONS, INSPECTION_REPLIES = readme_inspection()


def command(method_or_verb: str) -> list[str]:
    [found] = [c for c in COMMANDS if method_or_verb in c[-1] or method_or_verb in c]
    return found


@pytest.fixture
async def served(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    # The README's placeholder token is what this fake accepts.
    async with make_harness(FakePipedrive(token="<pipedrive-oauth-token>"), "") as harness:
        yield harness


async def grpcurl(harness: Harness, args: list[str]) -> str:
    """Runs grpcurl without blocking this loop, which also runs the server."""
    assert README_TARGET in args
    args = [f"127.0.0.1:{harness.server.port}" if a == README_TARGET else a for a in args]
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


def test_the_readme_has_the_four_commands() -> None:
    assert [c[-1] for c in COMMANDS] == [
        "list",
        "messagelog.v1.MessageLogService",
        "grpc.health.v1.Health/Check",
        "messagelog.v1.MessageLogService/AddMessageLog",
    ]


async def test_list_shows_the_service_health_and_reflection(served: Harness) -> None:
    services = (await grpcurl(served, command("list"))).split()

    assert "messagelog.v1.MessageLogService" in services
    assert "grpc.health.v1.Health" in services


async def test_describe_shows_both_rpcs(served: Harness) -> None:
    text = await grpcurl(served, command("describe"))

    assert text.startswith("messagelog.v1.MessageLogService is a service:")
    assert "rpc AddMessageLog ( .messagelog.v1.AddMessageLogRequest )" in text
    assert "returns ( .messagelog.v1.UpdateMessageLogResponse )" in text


async def test_describe_shows_the_proto_comments(served: Harness) -> None:
    """Operators read the proto's comments through reflection; the committed descriptor set carries them."""
    request = await grpcurl(served, [*command("describe")[:-1], "messagelog.v1.AddMessageLogRequest"])
    service = await grpcurl(served, command("describe"))

    assert (
        "// MessageLogService writes SMS, pager, voicemail and fax messages into customers' CRMs." in service
    )
    assert "  // AddMessageLog logs one message for a contact." in service
    assert "  // UpdateMessageLog appends one message to the CRM record named by log_id" in service
    assert request.startswith("messagelog.v1.AddMessageLogRequest is a message:\n//")


async def test_health_check_is_serving(served: Harness) -> None:
    reply = json.loads(await grpcurl(served, command("grpc.health.v1.Health/Check")))

    assert reply == {"status": "SERVING"}


async def test_the_add_message_log_example_gives_the_reply_the_readme_shows(served: Harness) -> None:
    args = command("messagelog.v1.MessageLogService/AddMessageLog")

    reply = json.loads(await grpcurl(served, args))

    fake = served.fake
    assert isinstance(fake, FakePipedrive)
    assert list(fake.activities) == [int(REPLY["log_id"])]
    assert reply == REPLY
    assert {r.headers["authorization"] for r in fake.calls()} == {"Bearer <pipedrive-oauth-token>"}


def readme_request(message_id: str, conversation_id: str) -> service_pb.AddMessageLogRequest:
    """The README's AddMessageLog example, for another message of another conversation."""
    args = command("messagelog.v1.MessageLogService/AddMessageLog")
    request = json_format.Parse(args[args.index("-d") + 1], service_pb.AddMessageLogRequest())
    request.message.id, request.message.conversation_id = message_id, conversation_id
    return request


async def test_the_inspection_examples_answer_what_the_readme_shows(served: Harness) -> None:
    """A logged, a pending and a failed message, as the README's GetMessageLog examples show them."""
    fake = served.fake
    assert isinstance(fake, FakePipedrive)
    auth = "Bearer <pipedrive-oauth-token>"
    await grpcurl(served, command("messagelog.v1.MessageLogService/AddMessageLog"))
    # Pipedrive's error body (tests/fakes/pipedrive.py): a 400 is CRM_REJECTED.
    refusal = {"success": False, "error": "Invalid due_date", "data": None, "additional_data": None}
    fake.inject(Fault(status=400, body=refusal, method="POST"), times=2)
    for _ in range(2):
        await served.add_error(readme_request("60279564006", "5578984350117917663"), auth=auth)
    fake.inject(Fault(delay=5, method="POST"))
    writing = asyncio.create_task(served.add(readme_request("60279564005", "5578984350117917662"), auth=auth))
    await asyncio.sleep(0.5)

    gets = [c for c in INSPECTIONS if c[-1].endswith("/GetMessageLog")]
    replies = [json.loads(await grpcurl(served, args)) for args in gets]
    [listing] = [c for c in INSPECTIONS if c[-1].endswith("/ListMessageLogs")]
    page = json.loads(await grpcurl(served, listing))
    await writing

    failed = replies[2]["message_log"]["last_failure"]
    assert abs(time.time() - datetime.fromisoformat(failed["time"]).timestamp()) < 30
    failed["time"] = INSPECTION_REPLIES[2]["message_log"]["last_failure"]["time"]
    assert replies == INSPECTION_REPLIES
    assert [m["message_log"]["state"] for m in replies] == [
        "LOG_STATE_LOGGED",
        "LOG_STATE_PENDING",
        "LOG_STATE_FAILED",
    ]
    assert len(page["message_logs"]) == 2
    assert page["next_page_token"]
