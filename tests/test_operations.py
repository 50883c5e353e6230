"""What operators rely on around the calls: the request id in the response headers, reflection v1
beside v1alpha, and a warning naming MESSAGELOG_* variables that are no setting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from service.config import Settings
from tests.conftest import Harness
from tests.helpers import add_request, sms
from tests.test_startup import service_env


def request_id(metadata: grpc.aio.Metadata | None) -> str | None:
    values = [v for k, v in metadata or () if k == "x-request-id"]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("trace-7.a_b", True), ("x" * 64, True), ("x" * 65, False), ("bad id", False), ("a/b", False)],
)
async def test_the_request_id_comes_back_in_the_headers(pipedrive: Harness, sent: str, kept: bool) -> None:
    call = pipedrive.stub.AddMessageLog(
        add_request("pipedrive", sms("m1")), metadata=(*pipedrive.metadata(), ("x-request-id", sent))
    )
    await call

    returned = request_id(await call.initial_metadata())

    assert returned is not None
    assert (returned == sent) is kept
    assert len(returned) == 16 or kept


async def test_a_failed_call_returns_its_request_id_in_its_trailers(pipedrive: Harness) -> None:
    """Not in headers: gRPC's client retries (UNAVAILABLE) end at the first headers they see."""
    call = pipedrive.stub.AddMessageLog(
        add_request("pipedrive", sms("m1")), metadata=(("x-request-id", "retry-me-1"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call

    assert request_id(raised.value.trailing_metadata()) == "retry-me-1"
    assert request_id(raised.value.initial_metadata()) is None


async def test_health_checks_carry_a_request_id(pipedrive: Harness) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pipedrive.server.port}") as channel:
        call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        await call
        assert request_id(await call.initial_metadata()) is not None


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_answers_in_v1_and_v1alpha(pipedrive: Harness, version: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{pipedrive.server.port}") as channel:
        info = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="messagelog.v1.MessageLogService"),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"
            ),
        ]
        listed, service_file, v1_file = [r async for r in info(iter(requests))]

    names = {s.name for s in listed.list_services_response.service}
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
    assert "messagelog.v1.MessageLogService" in names
    assert service_file.file_descriptor_response.file_descriptor_proto
    assert v1_file.file_descriptor_response.file_descriptor_proto


def test_unread_names_are_the_misspelt_ones() -> None:
    settings = Settings.from_env(
        {
            "MESSAGELOG_PORT": "0",
            "MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": "http://127.0.0.1:1",
            "MESSAGELOG_CRM_PIPEDRIVE_BASEURL": "http://127.0.0.1:2",
            "MESSAGELOG_METRIC_PORT": "9090",
            "MESSAGELOG_TARGET": "localhost:50051",
            "PATH": "/usr/bin",
        }
    )
    settings.crm("pipedrive")

    assert settings.unread_names() == ["MESSAGELOG_CRM_PIPEDRIVE_BASEURL", "MESSAGELOG_METRIC_PORT"]


def test_startup_warns_of_unknown_settings_by_name(tmp_path: Path) -> None:
    env = service_env(tmp_path, MESSAGELOG_ALLOW_INSECURE_BND="true", MESSAGELOG_CRM_HUBSPOT_TIMEOUT="5")
    with subprocess.Popen(
        [sys.executable, "-m", "service"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stderr is not None
            lines = [json.loads(process.stderr.readline()) for _ in range(3)]
        finally:
            process.terminate()
            process.wait(timeout=30)

    [warning] = [line for line in lines if line["event"] == "unknown_settings"]
    assert warning["names"] == ["MESSAGELOG_ALLOW_INSECURE_BND"]
    assert warning["level"] == "warning"
