"""Malformed requests, undecodable bytes included, are INVALID_ARGUMENT with ErrorInfo, one `rpc`
log line and a metric; ALREADY_LOGGED reports the day of the record that holds the message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.conftest import Harness, dial, fake_pipedrive
from tests.helpers import StatusDetails, add_request, sms

# Field 1 (crm, a string) holding the two bytes C3 28: not UTF-8.
BAD_UTF8 = b"\x0a\x02\xc3\x28"
NOT_PROTOBUF = b"\xff\xff\xff\xff"


def _rpc_count(method: str, code: str) -> float:
    name = "messagelog_rpc_duration_seconds_count"
    labels = {"method": f"messagelog.v1.MessageLogService/{method}", "code": code}
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("method", ["AddMessageLog", "UpdateMessageLog"])
@pytest.mark.parametrize("payload", [BAD_UTF8, NOT_PROTOBUF], ids=["invalid-utf8", "not-protobuf"])
async def test_undecodable_bytes_are_invalid_argument_with_error_info_a_log_line_and_a_metric(
    pipedrive: Harness, method: str, payload: bytes
) -> None:
    before = _rpc_count(method, "INVALID_ARGUMENT")

    async with dial(pipedrive.server.port) as channel:
        # No serializer: the bytes go out as they are.
        call = channel.unary_unary(f"/messagelog.v1.MessageLogService/{method}")
        with capture_logs() as logs:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(payload, metadata=pipedrive.metadata(), timeout=10)
            # The server logs and counts the call after its status went out (the count last);
            # nothing signals it to the test.
            async with asyncio.timeout(10):
                while _rpc_count(method, "INVALID_ARGUMENT") == before:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)

    status = StatusDetails(raised.value)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "UNDECODABLE_REQUEST"
    assert status.fields == {"request"}
    [line] = [e for e in logs if e["event"] == "rpc"]
    assert (line["method"], line["status"], line["reason"]) == (
        method,
        "INVALID_ARGUMENT",
        "UNDECODABLE_REQUEST",
    )
    assert _rpc_count(method, "INVALID_ARGUMENT") == before + 1
    assert fake_pipedrive(pipedrive).requests == []


async def test_already_logged_carries_the_local_date_of_the_record_holding_the_message(
    pipedrive: Harness,
) -> None:
    # 02:00 UTC yesterday: the evening before in New York, the morning of yesterday in Tokyo.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    at = f"{yesterday.isoformat()}T02:00:00Z"
    first = await pipedrive.add(add_request("pipedrive", sms("m1", at), time_zone="America/New_York"))
    again = await pipedrive.add(add_request("pipedrive", sms("m1", at), time_zone="Asia/Tokyo"))

    assert first.local_date == (yesterday - timedelta(days=1)).isoformat()
    assert again.outcome == pb.LOG_OUTCOME_ALREADY_LOGGED
    assert (again.log_id, again.local_date) == (first.log_id, first.local_date)
