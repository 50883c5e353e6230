"""deploy/: the manifests agree with the README and the service, and the image's command starts it.

Docker and Kubernetes are not available here, so the image's CMD runs as a plain subprocess with
the environment the image and the manifest give it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.store.sealing import new_key

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DEFAULT_PORT = 50051


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, Any]:
    [found] = [d for d in manifests() if d["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    [only] = of_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def literal_env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container()["env"] if "value" in e}


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for instruction, args in dockerfile():
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(args))
    return env


def documented_settings() -> list[re.Pattern[str]]:
    """The README's settings table, `<NAME>` placeholders as patterns."""
    section = (ROOT / "README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(MESSAGELOG_[A-Z0-9_<>]+)` \|", section, re.MULTILINE)
    assert len(names) >= 10
    return [re.compile("^" + re.sub(r"<[A-Z]+>", "[A-Z0-9]+", name) + "$") for name in names]


def test_every_setting_the_image_and_manifest_set_is_documented() -> None:
    names = {e["name"] for e in container()["env"]} | set(dockerfile_env())
    settings = {n for n in names if n.startswith("MESSAGELOG_")}
    patterns = documented_settings()

    undocumented = {n for n in settings if not any(p.match(n) for p in patterns)}

    assert "MESSAGELOG_DATABASE_URL" in settings
    assert not undocumented


def test_the_database_url_comes_from_a_secret_never_a_literal() -> None:
    [database] = [e for e in container()["env"] if e["name"] == "MESSAGELOG_DATABASE_URL"]

    assert "value" not in database
    assert set(database["valueFrom"]["secretKeyRef"]) == {"name", "key"}


def test_probes_and_service_target_the_port_the_service_listens_on() -> None:
    listening = int(
        literal_env().get("MESSAGELOG_PORT", dockerfile_env().get("MESSAGELOG_PORT", DEFAULT_PORT))
    )
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    [service_port] = of_kind("Service")["spec"]["ports"]

    assert ports == {"grpc": listening}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container()[probe]["grpc"]["port"] == listening
    assert service_port["targetPort"] in ("grpc", listening)
    # The service listens only on loopback by default, where no probe can reach it.
    host = literal_env().get("MESSAGELOG_HOST", dockerfile_env().get("MESSAGELOG_HOST"))
    assert host == "0.0.0.0"  # noqa: S104


def test_the_readiness_probe_names_a_service_the_server_reports_health_for() -> None:
    service = container()["readinessProbe"]["grpc"].get("service", "")

    assert service in ("", "messagelog.v1.MessageLogService")


def test_the_pod_outlives_the_services_shutdown_grace() -> None:
    spec = of_kind("Deployment")["spec"]["template"]["spec"]
    grace = float(literal_env()["MESSAGELOG_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = container().get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)

    assert spec["terminationGracePeriodSeconds"] > pre_stop + grace


def test_selectors_of_the_service_and_budget_match_the_pods() -> None:
    labels = of_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    service_selector = of_kind("Service")["spec"]["selector"]
    budget_selector = of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]

    assert service_selector.items() <= labels.items()
    assert budget_selector.items() <= labels.items()
    assert of_kind("Deployment")["spec"]["replicas"] > 1


def test_the_image_runs_python_dash_m_service_as_a_non_root_user() -> None:
    instructions = dockerfile()
    commands = [json.loads(args) for name, args in instructions if name in ("CMD", "ENTRYPOINT")]
    [user] = [args for name, args in instructions if name == "USER"]

    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert commands == [["python", "-m", "service"]]
    assert user not in ("root", "0")
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
    assert of_kind("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


@pytest.mark.slow
def test_the_image_command_with_the_manifest_env_starts_a_serving_server(tmp_path: Path) -> None:
    [command] = [json.loads(args) for name, args in dockerfile() if name == "CMD"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
    env |= dockerfile_env() | literal_env()
    env["MESSAGELOG_DATABASE_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    # The mounted secret holding the store's key, as the manifest's volume provides it.
    assert env["MESSAGELOG_STORE_KEY_FILE"].startswith(container()["volumeMounts"][0]["mountPath"])
    (tmp_path / "store-keys").write_text(new_key() + "\n")
    env["MESSAGELOG_STORE_KEY_FILE"] = str(tmp_path / "store-keys")
    # A fixed port can be taken on a shared machine; the port agreement is checked above.
    env["MESSAGELOG_PORT"] = "0"
    with subprocess.Popen(
        [sys.executable if command[0] == "python" else command[0], *command[1:]],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            started = json.loads(process.stderr.readline())
            assert started["event"] == "server_started"
            assert started["address"] == f"0.0.0.0:{started['port']}"
            with grpc.insecure_channel(f"127.0.0.1:{started['port']}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                probe = container()["readinessProbe"]["grpc"].get("service", "")
                reply = stub.Check(health_pb2.HealthCheckRequest(service=probe), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=float(env["MESSAGELOG_SHUTDOWN_GRACE_SECONDS"]) + 20) == 0
        finally:
            process.kill()
