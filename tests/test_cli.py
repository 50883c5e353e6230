"""The `messagelog` console script against the real server and a fake Pipedrive."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from messagelog.backfill import Progress

from tests.conftest import Harness, fake_pipedrive
from tests.fakes import message_store
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "messagelog"
AUTH = "Bearer pd-token"


@dataclass
class Result:
    code: int
    out: str
    err: str


async def messagelog(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Runs the installed console script; a subprocess, because the server runs on this test's loop."""
    process = await asyncio.create_subprocess_exec(
        str(CLI),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")} | (env or {}),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def pipedrive(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    # No burst limit: these tests count outcomes, and rate-limit pauses would only slow them.
    async with make_harness(FakePipedrive(burst_limit=1_000_000), AUTH) as harness:
        yield harness


def target(harness: Harness) -> str:
    return f"127.0.0.1:{harness.server.port}"


def summary(out: str) -> dict[str, int]:
    """The summary's `name: count` lines, failure reasons included."""
    counts = {}
    for line in out.splitlines()[1:]:
        name, _, count = line.strip().rpartition(":")
        counts[name] = int(count)
    return counts


async def test_log_from_flags_creates_then_appends(pipedrive: Harness) -> None:
    flags = [
        "log", "--target", target(pipedrive), "--crm", "pipedrive", "--user-id", "1001",
        "--hostname", "acme.pipedrive.com", "--time-zone", "America/New_York", "--contact-id", "42",
        "--contact-name", "Jane Doe", "--conversation-id", "c1", "--from", "+16505553204",
        "--to", "+18885550052", "--time", "2026-11-20T14:00:00Z",
    ]  # fmt: skip
    env = {"MESSAGELOG_CRM_AUTHORIZATION": AUTH}

    first = await messagelog(*flags, "--message-id", "m1", "--text", "Hello", env=env)
    second = await messagelog(*flags, "--message-id", "m2", "--text", "Again", env=env)

    fake = pipedrive.fake
    assert isinstance(fake, FakePipedrive)
    [activity_id] = fake.activities
    assert (first.code, first.out) == (0, f"created: log_id={activity_id} local_date=2026-11-20\n")
    assert (second.code, second.out) == (0, f"appended: log_id={activity_id} local_date=2026-11-20\n")
    assert "Again" in fake.record_body(str(activity_id))


async def test_log_from_a_proto_json_request_file(pipedrive: Harness, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json_format.MessageToJson(add_request("pipedrive", sms("m1"))))

    result = await messagelog(
        "log", "--target", target(pipedrive), "--request", str(request), "--crm-authorization", AUTH
    )
    again = await messagelog(
        "log", "--target", target(pipedrive), "--request", str(request), "--crm-authorization", AUTH
    )

    assert result.code == 0 and result.out.startswith("created: log_id=")
    assert again.code == 0 and again.out.startswith("already logged: log_id=")


async def test_errors_are_one_line_with_code_reason_and_message(pipedrive: Harness, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json_format.MessageToJson(add_request("pipedrive", sms("m1"))))
    base = ["log", "--target", target(pipedrive), "--request", str(request)]

    refused = await messagelog(*base, "--crm-authorization", "Bearer wrong")
    invalid = await messagelog(*base, "--crm-authorization", AUTH, "--contact-id", " ")
    no_auth = await messagelog(*base)

    assert refused.code == 1
    assert refused.err.startswith("messagelog: FAILED_PRECONDITION CRM_AUTH_FAILED: ")
    assert invalid.code == 1
    assert invalid.err.startswith("messagelog: INVALID_ARGUMENT INVALID_REQUEST: ")
    assert "contact.id is required" in invalid.err
    assert no_auth.code == 2
    assert "MESSAGELOG_CRM_AUTHORIZATION" in no_auth.err
    for result in (refused, invalid, no_auth):
        assert len(result.err.splitlines()) == 1
        assert "Traceback" not in result.err


def export(tmp_path: Path, count: int, conversations: int) -> tuple[list[str], dict[str, int]]:
    """Writes an export and its context; returns the backfill flags and the outcomes it must have."""
    exported = message_store.records(count, conversations=conversations)
    lines = message_store.write(tmp_path / "export.jsonl", exported)
    context = tmp_path / "context.json"
    context.write_text(json.dumps(message_store.context(conversations)))
    flags = [str(lines), "--context", str(context), "--crm-authorization", AUTH]
    return flags, message_store.expected_outcomes(exported)


async def test_backfill_logs_every_message_and_a_rerun_finds_them_all_already_logged(
    pipedrive: Harness, tmp_path: Path
) -> None:
    flags, expected = export(tmp_path, count=300, conversations=7)
    assert expected["created"] > 7 and expected["appended"] > 100  # several days and kinds

    first = await messagelog("backfill", "--target", target(pipedrive), *flags)
    second = await messagelog("backfill", "--target", target(pipedrive), *flags, "--concurrency", "3")

    assert first.code == 0, first.err
    assert first.out.startswith("backfill: 300 messages in ")
    assert summary(first.out) == {**expected, "already logged": 0, "failed": 0}
    fake = pipedrive.fake
    assert isinstance(fake, FakePipedrive)
    assert len(fake.activities) == expected["created"]
    assert second.code == 0, second.err
    assert summary(second.out) == {"created": 0, "appended": 0, "already logged": 300, "failed": 0}
    # Not a terminal: periodic progress lines, the last one complete.
    assert second.err.splitlines()[-1].startswith("backfill: 300/300 messages (100%)")


async def test_a_failing_backfill_counts_failures_by_reason_and_exits_non_zero(
    pipedrive: Harness, tmp_path: Path
) -> None:
    flags, _ = export(tmp_path, count=40, conversations=4)
    with (tmp_path / "export.jsonl").open("a") as lines:
        lines.write("{not json\n")
    pipedrive.fake.inject(Fault(status=401, body={"success": False, "error": "unauthorized"}), times=1000)

    result = await messagelog("backfill", "--target", target(pipedrive), *flags)

    assert result.code == 1
    assert summary(result.out) == {
        "created": 0,
        "appended": 0,
        "already logged": 0,
        "failed": 41,
        "BAD_RECORD": 1,
        "CRM_AUTH_FAILED": 40,
    }
    failures = [line for line in result.err.splitlines() if line.startswith("failed:")]
    # The first few of each reason are shown, then only counted, so a bad token cannot flood stderr.
    assert len(failures) == 3 + 1 + 1
    assert sum("FAILED_PRECONDITION CRM_AUTH_FAILED" in line for line in failures) == 3
    assert sum("line 41: BAD_RECORD: not JSON" in line for line in failures) == 1
    assert "Traceback" not in result.err


async def test_health_prints_serving_and_exits_zero_only_then(pipedrive: Harness) -> None:
    serving = await messagelog("health", "--target", target(pipedrive))
    await pipedrive.server.health.enter_graceful_shutdown()
    stopping = await messagelog("health", "--target", target(pipedrive))

    assert (serving.code, serving.out) == (0, "SERVING\n")
    assert (stopping.code, stopping.out) == (1, "NOT_SERVING\n")


async def test_a_server_that_is_not_there_is_one_line_and_stops_a_backfill_before_it_starts(
    tmp_path: Path,
) -> None:
    flags, _ = export(tmp_path, count=50, conversations=2)

    health = await messagelog("health", "--target", "127.0.0.1:1", "--timeout", "1")
    backfill = await messagelog("backfill", "--target", "127.0.0.1:1", "--timeout", "1", *flags)

    for result in (health, backfill):
        assert result.code == 1
        assert result.err.startswith("messagelog: DEADLINE_EXCEEDED")
        assert result.err.endswith("(no answer from the service at 127.0.0.1:1)\n")
        assert len(result.err.splitlines()) == 1
    assert backfill.out == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal_and_keeps_failure_lines() -> None:
    now = [0.0]
    screen = Terminal()
    progress = Progress(4, screen, every=60, clock=lambda: now[0])

    for failed in (False, True):
        now[0] += 1
        progress.advance(failed=failed)
    progress.note("failed: message 7: UNAVAILABLE CRM_TIMEOUT: no answer")
    progress.finish()

    text = screen.getvalue()
    assert text.count("\n") == 2  # the failure line and the final one; progress itself is redrawn
    assert "\r\x1b[Kfailed: message 7" in text
    assert text.endswith("\r\x1b[Kbackfill: 2/4 messages (50%), 1/s, ETA 2 s, 1 failed\n")


def test_progress_shows_what_slowed_it() -> None:
    now = [0.0]
    screen = io.StringIO()
    progress = Progress(10, screen, every=60, clock=lambda: now[0])

    progress.retried(3)
    progress.pause(12.0, "CRM_RATE_LIMITED")
    now[0] += 2
    during = progress.text()
    now[0] += 20
    after = progress.text()

    assert during.endswith(
        "0 failed, 3 CRM retries waited out by the service, 1 pauses (12 s), waiting 10 s (CRM_RATE_LIMITED)"
    )
    assert after.endswith("0 failed, 3 CRM retries waited out by the service, 1 pauses (12 s)")


async def test_global_flags_go_before_or_after_the_subcommand(pipedrive: Harness) -> None:
    before = await messagelog("--target", target(pipedrive), "--timeout", "5", "health")
    after = await messagelog("health", "--timeout", "5", "--target", target(pipedrive))
    mixed = await messagelog("--target", "127.0.0.1:1", "health", "--target", target(pipedrive))

    assert [r.out for r in (before, after, mixed)] == ["SERVING\n"] * 3


async def test_health_of_an_unknown_service_says_so(pipedrive: Harness) -> None:
    result = await messagelog("health", "--service", "nope", "--target", target(pipedrive))

    assert result.code == 2
    assert result.err == (
        f"messagelog: the service at {target(pipedrive)} reports no health for 'nope';"
        ' ask for "" (the server) or messagelog.v1.MessageLogService\n'
    )


async def test_the_readme_log_example_logs(make_harness: Callable[..., Any]) -> None:
    section = (ROOT / "README.md").read_text().split("### From the command line", 1)[1]
    bash = section.split("```bash\n", 1)[1].split("```", 1)[0]
    [example] = [c for c in bash.replace("\\\n", " ").splitlines() if " log --crm " in c]
    args = shlex.split(example, comments=True)[1:]

    async with make_harness(FakePipedrive(token="<pipedrive-oauth-token>"), "") as harness:
        result = await messagelog(*args, env={"MESSAGELOG_TARGET": target(harness)})
        [activity] = fake_pipedrive(harness).activities.values()

    assert result.code == 0, result.err
    assert result.out.startswith("created: log_id=")
    assert "Is the house still for sale?" in str(activity)


async def test_backfill_takes_voicemail_and_fax_links_from_the_export(
    pipedrive: Harness, tmp_path: Path
) -> None:
    exported = message_store.records(40, conversations=2)
    for record in exported:
        for attachment in record.get("attachments", []):
            attachment["link"] = f"https://media.example/{attachment['type']}/{record['id']}"
    lines = message_store.write(tmp_path / "export.jsonl", exported)
    context = tmp_path / "context.json"
    context.write_text(json.dumps(message_store.context(2)))
    [voicemail] = [r for r in exported if r["type"] == "VoiceMail"][:1]
    [fax] = [r for r in exported if r["type"] == "Fax"]

    result = await messagelog(
        "backfill", str(lines), "--context", str(context), "--crm-authorization", AUTH,
        "--target", target(pipedrive),
    )  # fmt: skip

    assert result.code == 0, result.err
    bodies = [fake_pipedrive(pipedrive).record_body(i) for i in fake_pipedrive(pipedrive).record_ids()]
    [voicemail_body] = [b for b in bodies if f"AudioRecording/{voicemail['id']}" in b]
    [fax_body] = [b for b in bodies if f"RenderedDocument/{fax['id']}" in b]
    assert "not provided" not in voicemail_body + fax_body
    assert "Transcript" not in voicemail_body
    assert voicemail["subject"] not in voicemail_body


async def test_backfill_progress_counts_the_crm_retries_the_service_waited_out(
    pipedrive: Harness, tmp_path: Path
) -> None:
    flags, _ = export(tmp_path, count=10, conversations=1)
    over_limit = {"success": False, "error": "Request over limit"}  # Pipedrive's 429 body (tests/fakes)
    writes = r"^/api/v2/activities"
    pipedrive.fake.inject(
        Fault(status=429, body=over_limit, headers={"Retry-After": "0"}, path_pattern=writes), times=2
    )

    result = await messagelog("backfill", "--target", target(pipedrive), *flags, "--progress-every", "0")

    assert result.code == 0, result.err
    assert "2 CRM retries waited out by the service" in result.err.splitlines()[-1]
