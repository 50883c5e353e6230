"""Per-caller authorization: MESSAGELOG_CALLER_CRMS limits a caller to some CRMs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from messagelog.v1 import message_log_pb2 as pb

from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms
from tests.security.conftest import CALLER_TOKEN, OTHER_CALLER_TOKEN, bearer

AUTH = "Bearer pd-token"


async def test_a_caller_limited_to_other_crms_is_permission_denied_and_reaches_no_crm(
    make_harness: Callable[..., Any], tokens_file: Path
) -> None:
    rules = json.dumps({"billing": ["clio", "hubspot"], "support-desk": ["pipedrive"]})
    common = {"MESSAGELOG_AUTH_TOKENS_FILE": str(tokens_file), "MESSAGELOG_CALLER_CRMS": rules}
    async with make_harness(FakePipedrive(), AUTH, extra_metadata=bearer(CALLER_TOKEN), **common) as h:
        denied = await h.add_error(add_request("pipedrive", sms("m1")))
        assert h.fake.requests == []
    async with make_harness(FakePipedrive(), AUTH, extra_metadata=bearer(OTHER_CALLER_TOKEN), **common) as h:
        allowed = await h.add(add_request("pipedrive", sms("m1")))

    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert denied.reason == "CALLER_NOT_ALLOWED"
    assert denied.error_info is not None
    assert denied.error_info.metadata["crm"] == "pipedrive"
    assert allowed.outcome == pb.LOG_OUTCOME_CREATED
