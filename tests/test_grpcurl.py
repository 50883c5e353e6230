"""The README's grpcurl commands, taken from the README itself, run with the real grpcurl binary
against the real server, so the README cannot go stale."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Harness
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
