"""clients/node/caller.js, a Node.js caller that loads protos/ (the contract and the google/rpc
protos shipped with it), logs a message and decodes an error's details, against the real server.

Its dependencies come from the npm registry with `npm ci` (the committed package-lock.json) into a
temporary folder. CI installs node and npm when missing (.ci/run); elsewhere the test is skipped
with that reason.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from tests.conftest import PIPEDRIVE_AUTH, Harness, fake_pipedrive
from tests.helpers import add_request, sms

ROOT = Path(__file__).resolve().parent.parent
NODE_CLIENT = ROOT / "clients" / "node"
GOOGLE_RPC = ("status.proto", "error_details.proto", "code.proto")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed (CI installs them: .ci/run)",
)


@pytest.fixture(scope="module")
def node_caller(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """caller.js with its locked dependencies installed beside it."""
    folder = tmp_path_factory.mktemp("node-caller")
    for name in ("package.json", "package-lock.json", "caller.js"):
        shutil.copy(NODE_CLIENT / name, folder / name)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
        cwd=folder,
        check=True,
        timeout=300,
    )
    return folder / "caller.js"


async def call(harness: Harness, caller: Path, request: Any, tmp_path: Path, auth: str) -> tuple[int, Any]:
    # As proto-loader takes it: proto JSON, except a Timestamp is {seconds, nanos}.
    as_object = json_format.MessageToDict(request, preserving_proto_field_name=True)
    created = request.message.creation_time
    as_object["message"]["creation_time"] = {"seconds": str(created.seconds), "nanos": created.nanos}
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(as_object))
    process = await asyncio.create_subprocess_exec(
        "node",
        str(caller),
        f"127.0.0.1:{harness.server.port}",
        str(request_file),
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "MESSAGELOG_PROTOS": str(ROOT / "protos")}
        | ({"MESSAGELOG_CRM_AUTHORIZATION": auth} if auth else {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert out, err.decode()
    return process.returncode or 0, json.loads(out)


def recent() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat()


async def test_node_logs_a_message(pipedrive: Harness, node_caller: Path, tmp_path: Path) -> None:
    returncode, reply = await call(
        pipedrive, node_caller, add_request("pipedrive", sms("n1", recent())), tmp_path, PIPEDRIVE_AUTH
    )

    assert returncode == 0
    assert reply["response"]["outcome"] == "LOG_OUTCOME_CREATED"
    assert fake_pipedrive(pipedrive).record_ids() == [reply["response"]["log_id"]]


async def test_node_decodes_the_error_details(pipedrive: Harness, node_caller: Path, tmp_path: Path) -> None:
    request = add_request("pipedrive", sms("n1", recent()), contact_id="")

    returncode, reply = await call(pipedrive, node_caller, request, tmp_path, PIPEDRIVE_AUTH)

    assert returncode == 1
    error = reply["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    info, bad_request = error["details"]
    assert info == {
        "@type": "google.rpc.ErrorInfo",
        "reason": "INVALID_REQUEST",
        "domain": "messagelog",
        "metadata": {"crm": "pipedrive"},
    }
    assert bad_request["@type"] == "google.rpc.BadRequest"
    assert "contact.id" in {v["field"] for v in bad_request["field_violations"]}


def test_the_shipped_google_rpc_protos_are_the_ones_the_python_errors_use() -> None:
    """protos/google/rpc/ is googleapis-common-protos' copy, unchanged (license header included)."""
    import google.rpc

    [installed] = google.rpc.__path__
    for name in GOOGLE_RPC:
        shipped = (ROOT / "protos" / "google" / "rpc" / name).read_text()
        assert shipped == (Path(installed) / name).read_text()
        assert "Licensed under the Apache License, Version 2.0" in shipped
