"""Caller authentication: TLS on the port, mutual TLS or bearer tokens, and safe defaults for binding."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc
from structlog.testing import capture_logs

from service.config import Settings
from service.server import StartupError, running
from tests.conftest import dial
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms
from tests.security.conftest import CALLER_TOKEN, Pki, bearer, mtls_env, tls_env
from tests.test_startup import run_failing, service_env

AUTH = "Bearer pd-token"
Make = Callable[..., Any]
PUBLIC_HOST = "0.0.0.0"  # noqa: S104 (what these tests are about)


def rpc_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "rpc"]


async def test_tls_port_serves_tls_and_refuses_plaintext(make_harness: Make, pki: Pki) -> None:
    async with make_harness(
        FakePipedrive(), AUTH, credentials=pki.channel_credentials(), **tls_env(pki)
    ) as h:
        response = await h.add(add_request("pipedrive", sms("m1")))
        async with dial(h.server.port) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await service_grpc.MessageLogServiceStub(plaintext).AddMessageLog(
                    add_request("pipedrive", sms("m2")), metadata=h.metadata(), timeout=3
                )

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(h.fake.calls("POST")) == 1


async def test_mutual_tls_names_the_caller_by_its_certificate_subject(make_harness: Make, pki: Pki) -> None:
    with capture_logs() as logs:
        async with make_harness(
            FakePipedrive(), AUTH, credentials=pki.channel_credentials(pki.client), **mtls_env(pki)
        ) as h:
            await h.add(add_request("pipedrive", sms("m1")))

    (line,) = rpc_lines(logs)
    assert line["status"] == "OK"
    assert "CN=billing" in line["caller"]


@pytest.mark.parametrize("client", ["none", "stranger"])
async def test_mutual_tls_refuses_callers_without_a_certificate_from_the_client_ca(
    make_harness: Make, pki: Pki, client: str
) -> None:
    credentials = pki.channel_credentials(pki.stranger if client == "stranger" else None)
    async with make_harness(FakePipedrive(), AUTH, credentials=credentials, **mtls_env(pki)) as h:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await h.add(add_request("pipedrive", sms("m1")), timeout=3)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails
    assert h.fake.requests == []


async def test_a_valid_bearer_token_is_the_callers_identity(make_harness: Make, tokens_file: Path) -> None:
    with capture_logs() as logs:
        async with make_harness(
            FakePipedrive(),
            AUTH,
            extra_metadata=bearer(CALLER_TOKEN),
            MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file),
        ) as h:
            response = await h.add(add_request("pipedrive", sms("m1")))

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    (line,) = rpc_lines(logs)
    assert line["caller"] == "billing"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        bearer("wrong-token"),
        bearer(CALLER_TOKEN + "x"),
        bearer(CALLER_TOKEN[:-1]),
        (("authorization", CALLER_TOKEN),),  # no scheme
        (("authorization", f"Basic {CALLER_TOKEN}"),),
        # The token's hash, as written in the file, is not the token.
        bearer("f" * 64),
    ],
)
async def test_calls_without_a_valid_token_are_unauthenticated_and_reach_no_crm(
    make_harness: Make, tokens_file: Path, metadata: tuple[tuple[str, str], ...]
) -> None:
    with capture_logs() as logs:
        async with make_harness(
            FakePipedrive(), AUTH, extra_metadata=metadata, MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file)
        ) as h:
            status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.UNAUTHENTICATED
    assert status.reason == "CALLER_UNAUTHENTICATED"
    assert h.fake.requests == []
    (line,) = rpc_lines(logs)
    assert (line["status"], line["reason"]) == ("UNAUTHENTICATED", "CALLER_UNAUTHENTICATED")


async def test_health_and_reflection_need_no_identity(make_harness: Make, tokens_file: Path) -> None:
    async with (
        make_harness(FakePipedrive(), AUTH, MESSAGELOG_AUTH_TOKENS_FILE=str(tokens_file)) as h,
        dial(h.server.port) as channel,
    ):
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = [
            reply
            async for reply in reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        ]
        status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    names = {s.name for s in replies[0].list_services_response.service}
    assert "messagelog.v1.MessageLogService" in names
    assert status.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_zero_config_start_listens_on_loopback_with_one_warning_line(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env=service_env(tmp_path, MESSAGELOG_PORT="0"),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            started = json.loads(process.stderr.readline())
            warning = json.loads(process.stderr.readline())
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            rest = [json.loads(line) for line in process.stderr.read().splitlines()]
        finally:
            process.kill()

    assert started["address"].startswith("127.0.0.1:")
    assert (warning["event"], warning["level"]) == ("insecure_listener", "warning")
    assert [line["level"] for line in rest] == ["info", "info"]


def test_a_public_bind_without_auth_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    result = run_failing(tmp_path, MESSAGELOG_HOST=PUBLIC_HOST)

    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("messagelog: cannot start: refusing to listen on 0.0.0.0:0 without TLS")
    assert "MESSAGELOG_ALLOW_INSECURE_BIND" in line


@pytest.mark.parametrize(
    ("tls", "tokens", "starts"),
    [
        (False, False, False),
        (True, False, False),  # anyone could call over TLS
        (False, True, False),  # tokens would cross the network readable
        (True, True, True),
    ],
)
async def test_a_public_bind_needs_tls_and_caller_auth(
    env: dict[str, str], pki: Pki, tokens_file: Path, tls: bool, tokens: bool, starts: bool
) -> None:
    settings_env = {**env, "MESSAGELOG_HOST": PUBLIC_HOST, **(tls_env(pki) if tls else {})}
    if tokens:
        settings_env["MESSAGELOG_AUTH_TOKENS_FILE"] = str(tokens_file)
    settings = Settings.from_env(settings_env)
    if starts:
        async with running(settings) as server:
            assert server.port > 0
        return
    with pytest.raises(StartupError, match=r"refusing to listen on 0\.0\.0\.0"):
        async with running(settings):
            pass
    async with running(
        Settings.from_env({**settings_env, "MESSAGELOG_ALLOW_INSECURE_BIND": "true"})
    ) as server:
        assert server.port > 0


@pytest.mark.parametrize(
    ("setting", "content", "message"),
    [
        ("MESSAGELOG_AUTH_TOKENS_FILE", None, "cannot read MESSAGELOG_AUTH_TOKENS_FILE"),
        ("MESSAGELOG_AUTH_TOKENS_FILE", "# nothing\n", "holds no token"),
        ("MESSAGELOG_AUTH_TOKENS_FILE", f"{CALLER_TOKEN} billing\n", "line 1 must be"),
        ("MESSAGELOG_TLS_CERT_FILE", None, "not a usable certificate and key"),
        ("MESSAGELOG_TLS_CERT_FILE", "not a certificate", "not a usable certificate and key"),
        ("MESSAGELOG_TLS_CLIENT_CA_FILE", "not a certificate", "not a usable CA certificate"),
    ],
)
def test_unusable_security_files_stop_startup_with_one_line(
    tmp_path: Path, pki: Pki, setting: str, content: str | None, message: str
) -> None:
    path = tmp_path / "file"
    if content is not None:
        path.write_text(content)
    overrides = {setting: str(path)}
    if setting.startswith("MESSAGELOG_TLS"):
        overrides = (
            {**mtls_env(pki), **overrides} if "CLIENT_CA" in setting else {**tls_env(pki), **overrides}
        )

    result = run_failing(tmp_path, **overrides)

    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("messagelog: cannot start: ")
    assert message in line
    assert CALLER_TOKEN not in line


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MESSAGELOG_TLS_CERT_FILE": "a.crt"}, "go together"),
        ({"MESSAGELOG_TLS_CLIENT_CA_FILE": "ca.crt"}, "needs MESSAGELOG_TLS_CERT_FILE"),
        (
            {
                "MESSAGELOG_TLS_CERT_FILE": "a",
                "MESSAGELOG_TLS_KEY_FILE": "b",
                "MESSAGELOG_TLS_CLIENT_CA_FILE": "c",
                "MESSAGELOG_AUTH_TOKENS_FILE": "d",
            },
            "not both",
        ),
        ({"MESSAGELOG_CALLER_CRMS": '{"billing": ["clio"]}'}, "needs caller authentication"),
        ({"MESSAGELOG_ALLOW_INSECURE_BIND": "maybe"}, "must be true or false"),
    ],
)
def test_inconsistent_security_settings_are_invalid(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(overrides)
