"""The Prometheus endpoint, scraped over HTTP after real calls through the server."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.server import StartupError, running
from tests.conftest import Harness, base_env
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

AUTH = "Bearer pd-token"
ADD = "messagelog.v1.MessageLogService/AddMessageLog"

Samples = Counter[tuple[str, frozenset[tuple[str, str]]]]


@pytest.fixture
def pipedrive_env() -> dict[str, str]:
    return {"MESSAGELOG_METRICS_PORT": "0"}


async def scrape(h: Harness) -> Samples:
    """Every messagelog_ sample, by name and labels; a series not exported yet reads as 0."""
    assert h.server.metrics_port
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{h.server.metrics_port}/metrics")
    reply.raise_for_status()
    return Counter(
        {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(reply.text)
            if family.name.startswith("messagelog_")
            for sample in family.samples
        }
    )


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after[key] - before[key]


async def test_calls_move_the_rpc_crm_retry_digest_and_store_series(pipedrive: Harness) -> None:
    before = await scrape(pipedrive)

    await pipedrive.add(add_request("pipedrive", sms("m1", "2026-11-20T15:00:00Z")))
    # The append's first PATCH fails and is retried.
    pipedrive.fake.inject(Fault(status=503, body={"success": False}, method="PATCH"))
    await pipedrive.add(add_request("pipedrive", sms("m2", "2026-11-20T15:01:00Z")))
    await pipedrive.add(add_request("pipedrive", sms("m1", "2026-11-20T15:00:00Z")))
    await pipedrive.add_error(add_request("pipedrive", sms("m3")), auth="")
    after = await scrape(pipedrive)

    rpcs = "messagelog_rpc_duration_seconds_count"
    assert moved(before, after, rpcs, method=ADD, code="OK") == 3
    assert moved(before, after, rpcs, method=ADD, code="UNAUTHENTICATED") == 1
    outcomes = "messagelog_digest_outcomes_total"
    for outcome in ("created", "appended", "already_logged"):
        assert moved(before, after, outcomes, crm="pipedrive", outcome=outcome) == 1
    crm = "messagelog_crm_request_duration_seconds_count"
    assert moved(before, after, crm, crm="pipedrive", operation="create_activity", http_status="200") == 1
    assert moved(before, after, crm, crm="pipedrive", operation="update_activity", http_status="503") == 1
    assert moved(before, after, crm, crm="pipedrive", operation="update_activity", http_status="200") == 1
    retries = "messagelog_crm_retries_total"
    assert moved(before, after, retries, crm="pipedrive", operation="update_activity") == 1
    store = "messagelog_store_operation_duration_seconds_count"
    # Nobody else writes the digest, so each call claims and leases in one transaction.
    assert moved(before, after, store, operation="claim_and_lease", result="ok") == 3
    assert moved(before, after, store, operation="record_written", result="ok") == 2
    # Every latency observed lands in a bucket: the +Inf bucket counts what _count counts.
    assert (
        moved(before, after, "messagelog_rpc_duration_seconds_bucket", method=ADD, code="OK", le="+Inf") == 3
    )


async def test_no_label_carries_a_request_value(pipedrive: Harness) -> None:
    request = add_request("pipedrive", sms("msg-7731", conversation="conv-991"), contact_id="5501")
    await pipedrive.add(request)

    values = {value for _, labels in await scrape(pipedrive) for _, value in labels}

    for private in ("msg-7731", "conv-991", "5501", request.user.id, request.user.hostname):
        assert not any(private in value for value in values), private
    assert {"pipedrive", ADD, "create_activity", "claim_and_lease"} <= values


async def test_the_endpoint_is_off_unless_a_port_is_set(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakePipedrive(), AUTH) as harness:
        assert harness.server.metrics_port is None


async def test_a_taken_metrics_port_stops_startup_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings.from_env({**base_env(tmp_path), "MESSAGELOG_METRICS_PORT": str(port)})
        with pytest.raises(StartupError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            async with running(settings):
                pass


def test_the_metrics_port_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="MESSAGELOG_METRICS_PORT must be between 0 and 65535"):
        Settings.from_env({"MESSAGELOG_METRICS_PORT": "70000"})
