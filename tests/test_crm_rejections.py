"""CRM_REJECTED tells the caller what the CRM objected to: its own error code and a short message,
never words of the request the CRM quoted back."""

from __future__ import annotations

import grpc

from tests.conftest import Harness, fake_pipedrive
from tests.fakes.base import Fault
from tests.helpers import add_request, sms


async def test_a_rejection_carries_the_crms_error_code_and_message(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(
            status=400,
            body={
                "success": False,
                "error": "'due_time' must be in HH:MM format.",
                "code": "ERR_BAD_REQUEST",
            },
            method="POST",
        )
    )

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1", text="hello there")))

    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.reason == "CRM_REJECTED"
    assert status.error_info is not None
    assert status.error_info.metadata["crm_error_code"] == "ERR_BAD_REQUEST"
    assert status.error_info.metadata["crm_error_message"] == "'due_time' must be in HH:MM format."


async def test_a_message_quoting_the_request_is_withheld_and_the_code_kept(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(
            status=400,
            body={"success": False, "error": "invalid note: please wire the deposit", "code": "ERR_X"},
            method="POST",
        )
    )

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1", text="please wire the deposit")))

    assert status.error_info is not None
    assert status.error_info.metadata["crm_error_code"] == "ERR_X"
    assert "crm_error_message" not in status.error_info.metadata
    assert "deposit" not in status.message and "deposit" not in str(status.error_info)


async def test_a_code_that_is_not_an_identifier_is_dropped(pipedrive: Harness) -> None:
    fake_pipedrive(pipedrive).inject(
        Fault(status=422, body={"success": False, "error": "bad", "code": "x" * 65}, method="POST")
    )

    status = await pipedrive.add_error(add_request("pipedrive", sms("m1")))

    assert status.error_info is not None
    assert "crm_error_code" not in status.error_info.metadata
