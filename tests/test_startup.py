"""`python -m service` starts, serves and stops cleanly, and refuses bad setups with one clear line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


def service_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
    env.update(
        {
            "MESSAGELOG_PORT": "0",
            "MESSAGELOG_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
            "MESSAGELOG_LOG_FORMAT": "json",
        }
    )
    env.update(overrides)
    return env


def run_failing(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env=service_env(tmp_path, **overrides),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serves_health_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "service"],
        cwd=tmp_path,
        env=service_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            started = json.loads(process.stderr.readline())
            assert started["event"] == "server_started"
            with grpc.insecure_channel(f"127.0.0.1:{started['port']}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            events = [json.loads(line)["event"] for line in process.stderr.read().splitlines()]
            assert events[-2:] == ["server_stopping", "server_stopped"]
        finally:
            process.kill()
    assert (tmp_path / "store.db").exists()


def test_an_unreachable_database_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = run_failing(tmp_path, MESSAGELOG_DATABASE_URL="postgresql://nobody:secret-pw@127.0.0.1:1/none")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("messagelog: cannot start: cannot open the store at postgresql://nobody:***@")
    assert "secret-pw" not in result.stderr


def test_an_unknown_database_scheme_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = run_failing(tmp_path, MESSAGELOG_DATABASE_URL="mysql://localhost/db")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "messagelog: cannot start: MESSAGELOG_DATABASE_URL must look like sqlite:///path/to/file.db"
        " or postgresql://user@host:5432/dbname"
    ]


def test_a_taken_port_stops_startup_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_failing(tmp_path, MESSAGELOG_PORT=str(port))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"messagelog: cannot start: cannot listen on 127.0.0.1:{port}: the address is in use or not available"
    ]


def test_a_malformed_setting_stops_startup_with_one_line(tmp_path: Path) -> None:
    result = run_failing(tmp_path, MESSAGELOG_PORT="fifty")

    assert result.returncode == 1  # like every setup that cannot work
    assert result.stderr.strip().splitlines() == [
        "messagelog: invalid setting: MESSAGELOG_PORT must be a whole number, not 'fifty'"
    ]
