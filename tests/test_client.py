"""messagelog.client against the real server: typed errors, the retry policy, and the README example
run from a fresh virtualenv that has nothing but `pip install ./clients`."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from messagelog.client import MessageLogClient, MessageLogError, channel, service_config
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from tests.conftest import Harness
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms, update_request

ROOT = Path(__file__).resolve().parent.parent
AUTH = "Bearer pd-token"


@pytest.fixture
async def served(make_harness: Callable[..., Any]) -> AsyncIterator[tuple[Harness, MessageLogClient]]:
    async with (
        make_harness(FakePipedrive(), AUTH) as harness,
        MessageLogClient(f"127.0.0.1:{harness.server.port}", timeout=10) as client,
    ):
        yield harness, client


async def test_add_then_update_sends_the_authorization_and_returns_the_responses(
    served: tuple[Harness, MessageLogClient],
) -> None:
    harness, client = served
    request = add_request("pipedrive", sms("m1"))

    added = await client.add_message_log(request, AUTH, request_id="req-1")
    updated = await client.update_message_log(
        update_request(add_request("pipedrive", sms("m2")), added.log_id), AUTH
    )

    assert added.outcome == pb.LOG_OUTCOME_CREATED
    assert (updated.outcome, updated.log_id) == (pb.LOG_OUTCOME_APPENDED, added.log_id)
    assert {r.headers["authorization"] for r in harness.fake.calls()} == {AUTH}


async def test_missing_credentials_raise_a_typed_error_not_the_grpc_one(
    served: tuple[Harness, MessageLogClient],
) -> None:
    _, client = served
    with pytest.raises(MessageLogError) as raised:
        await client.add_message_log(add_request("pipedrive", sms("m1")), "")

    error = raised.value
    assert not isinstance(error, grpc.RpcError)
    assert (error.code, error.reason, error.domain) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CRM_CREDENTIALS_MISSING",
        "messagelog",
    )
    assert str(error).startswith("UNAUTHENTICATED CRM_CREDENTIALS_MISSING: call metadata")


async def test_invalid_input_carries_the_field_violations(served: tuple[Harness, MessageLogClient]) -> None:
    _, client = served
    request = add_request("pipedrive", sms("m1"))
    request.contact.id = ""

    with pytest.raises(MessageLogError) as raised:
        await client.add_message_log(request, AUTH)

    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.reason == "INVALID_REQUEST"
    assert ("contact.id", "is required") in raised.value.field_violations
    assert not raised.value.retryable


async def test_unavailable_is_retried_by_the_channel_and_the_call_succeeds(
    served: tuple[Harness, MessageLogClient],
) -> None:
    harness, client = served
    harness.fake.inject(Fault(status=503, body={"success": False}, method="POST"))

    response = await client.add_message_log(add_request("pipedrive", sms("m1")), AUTH)

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert len(harness.fake.calls("POST")) == 2


async def test_a_rate_limit_reaches_the_caller_at_once_with_its_retry_delay_and_crm_metadata(
    served: tuple[Harness, MessageLogClient],
) -> None:
    harness, _ = served
    limited = Fault(status=429, body={"success": False}, headers={"retry-after": "7"}, method="POST")
    harness.fake.inject(limited, times=10)

    async with MessageLogClient(f"127.0.0.1:{harness.server.port}", timeout=10, retries=0) as client:
        with pytest.raises(MessageLogError) as raised:
            await client.add_message_log(add_request("pipedrive", sms("m1")), AUTH)

    error = raised.value
    assert (error.code, error.reason, error.retry_delay) == (
        grpc.StatusCode.UNAVAILABLE,
        "CRM_RATE_LIMITED",
        7,
    )
    assert error.metadata == {"crm": "pipedrive", "crm_http_status": "429"}
    assert error.retryable
    # The service's pushback tells the channel not to retry a rate limit; the caller decides.
    assert len(harness.fake.calls("POST")) == 1


async def test_the_client_tries_again_when_retry_info_says_and_gives_up_past_its_timeout(
    make_harness: Callable[..., Any],
) -> None:
    # One attempt per CRM request: the 429 reaches the caller with its Retry-After as RetryInfo.
    async with make_harness(FakePipedrive(), AUTH, MESSAGELOG_CRM_MAX_ATTEMPTS="1") as harness:
        limited = Fault(status=429, body={"success": False}, headers={"retry-after": "1"}, method="POST")
        harness.fake.inject(limited)
        async with MessageLogClient(f"127.0.0.1:{harness.server.port}", timeout=10) as client:
            response = await client.add_message_log(add_request("pipedrive", sms("m1")), AUTH)
        assert response.outcome == pb.LOG_OUTCOME_CREATED
        assert len(harness.fake.calls("POST")) == 2
        first, second = harness.fake.calls("POST")
        assert second.received_at - first.received_at >= 1.0

        # A wait longer than what is left of the timeout is not started: the error comes at once.
        harness.fake.inject(
            Fault(status=429, body={"success": False}, headers={"retry-after": "30"}, method="POST")
        )
        async with MessageLogClient(f"127.0.0.1:{harness.server.port}", timeout=10) as client:
            with pytest.raises(MessageLogError) as raised:
                await client.add_message_log(add_request("pipedrive", sms("m2", conversation="conv-2")), AUTH)
        assert (raised.value.reason, raised.value.retry_delay) == ("CRM_RATE_LIMITED", 30)
        assert len(harness.fake.calls("POST")) == 3


def test_resource_exhausted_is_retryable_only_with_retry_info() -> None:
    assert MessageLogError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", retry_delay=1.0).retryable
    assert not MessageLogError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large").retryable


async def test_non_unavailable_errors_are_not_retried(served: tuple[Harness, MessageLogClient]) -> None:
    harness, client = served
    harness.fake.inject(Fault(status=401, body={"success": False}, method="POST"), times=3)

    with pytest.raises(MessageLogError) as raised:
        await client.add_message_log(add_request("pipedrive", sms("m1")), AUTH)

    assert raised.value.reason == "CRM_AUTH_FAILED"
    assert len(harness.fake.calls("POST")) == 1


async def test_the_blocking_channel_has_the_same_policy(served: tuple[Harness, MessageLogClient]) -> None:
    harness, _ = served
    with channel(f"127.0.0.1:{harness.server.port}") as blocking:
        stub = service_grpc.MessageLogServiceStub(blocking)
        call = stub.AddMessageLog.future(add_request("pipedrive", sms("m1")), metadata=harness.metadata())
        response = await asyncio.to_thread(call.result)
    assert response.outcome == pb.LOG_OUTCOME_CREATED


def test_the_service_config_retries_unavailable_only_with_a_default_deadline() -> None:
    config = json.loads(service_config(timeout=12))["methodConfig"][0]

    assert config["timeout"] == "12s"
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert {"service": "messagelog.v1.MessageLogService"} in config["name"]


def readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "the README's 'From Python' section has a python example"
    return found.group(1)


@pytest.mark.slow
async def test_readme_example_runs_from_a_fresh_virtualenv_with_only_the_client_installed(
    make_harness: Callable[..., Any], tmp_path: Path
) -> None:
    # A copy, so pip's build leaves nothing behind in the work tree.
    source = tmp_path / "clients"
    shutil.copytree(
        ROOT / "clients", source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__")
    )
    venv = tmp_path / "venv"
    await run([sys.executable, "-m", "venv", str(venv)], timeout=60)
    await run([str(venv / "bin" / "pip"), "install", "-q", str(source)], timeout=240)

    # The example's placeholder token is what this fake accepts, so only the address changes.
    async with make_harness(FakePipedrive(token="<pipedrive-oauth-token>"), "") as harness:
        example = readme_python_example().replace("localhost:50051", f"127.0.0.1:{harness.server.port}")
        assert example != readme_python_example()
        script = tmp_path / "example.py"
        script.write_text(example)
        output = await run([str(venv / "bin" / "python"), str(script)], timeout=60, cwd=tmp_path)

    fake = harness.fake
    assert isinstance(fake, FakePipedrive)
    [activity_id] = fake.activities
    assert output.strip() == f"LOG_OUTCOME_CREATED {activity_id}"
    assert "Is the house still for sale?" in fake.record_body(str(activity_id))


async def run(command: list[str], *, timeout: float, cwd: Path | None = None) -> str:
    """Runs a command without blocking the loop the server shares with the test."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode == 0, f"{command[0]} failed: {err.decode()[-2000:]}"
    return out.decode()
