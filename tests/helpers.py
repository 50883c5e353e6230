"""Request builders and status decoders shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

CONTACT_PHONE = "+16505553204"
USER_PHONE = "+18885550052"


def timestamp(iso: str) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC))
    return ts


def sms(
    message_id: str,
    at: str = "2026-11-20T15:00:00Z",
    text: str = "Hello there",
    *,
    conversation: str = "conv-1",
    inbound: bool = True,
    kind: int = pb.MESSAGE_TYPE_SMS,
) -> pb.Message:
    contact = pb.Party(phone_number=CONTACT_PHONE, name="Jane Doe")
    user = pb.Party(phone_number=USER_PHONE)
    return pb.Message(
        id=message_id,
        conversation_id=conversation,
        type=kind,
        direction=pb.MESSAGE_DIRECTION_INBOUND if inbound else pb.MESSAGE_DIRECTION_OUTBOUND,
        sender=contact if inbound else user,
        recipients=[user if inbound else contact],
        subject=text,
        creation_time=timestamp(at),
        message_status="Received" if inbound else "Sent",
    )


def add_request(
    crm: str,
    message: pb.Message,
    *,
    hostname: str = "acme.pipedrive.com",
    user_id: str = "1001",
    user_name: str = "",
    contact_id: str = "42",
    time_zone: str = "America/New_York",
    extras: dict[str, str] | None = None,
    user_info: dict[str, str] | None = None,
    recording_link: str = "",
    fax_doc_link: str = "",
) -> service_pb.AddMessageLogRequest:
    return service_pb.AddMessageLogRequest(
        crm=crm,
        user=pb.CrmUser(
            id=user_id,
            hostname=hostname,
            time_zone=time_zone,
            name=user_name,
            platform_additional_info=user_info or {},
        ),
        contact=pb.Contact(id=contact_id, name="Jane Doe", phone_number=CONTACT_PHONE, type="person"),
        message=message,
        additional_submission=extras or {},
        recording_link=recording_link,
        fax_doc_link=fax_doc_link,
    )


def update_request(add: service_pb.AddMessageLogRequest, log_id: str) -> service_pb.UpdateMessageLogRequest:
    update = service_pb.UpdateMessageLogRequest(log_id=log_id)
    for field in ("crm", "user", "contact", "message", "recording_link", "fax_doc_link"):
        value = getattr(add, field)
        if isinstance(value, str):
            setattr(update, field, value)
        else:
            getattr(update, field).CopyFrom(value)
    update.additional_submission.update(add.additional_submission)
    return update


class StatusDetails:
    """The google.rpc.Status details of a failed call."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.code = error.code()
        self.message = error.details() or ""
        self.error_info: error_details_pb2.ErrorInfo | None = None
        self.bad_request: error_details_pb2.BadRequest | None = None
        self.retry_info: error_details_pb2.RetryInfo | None = None
        self.pushback_ms: str | None = None
        for key, value in error.trailing_metadata() or ():
            if key == "grpc-retry-pushback-ms":
                self.pushback_ms = value
            if key == "grpc-status-details-bin":
                status = status_pb2.Status.FromString(value)
                assert status.code == self.code.value[0]
                for detail in status.details:
                    for attr, cls in (
                        ("error_info", error_details_pb2.ErrorInfo),
                        ("bad_request", error_details_pb2.BadRequest),
                        ("retry_info", error_details_pb2.RetryInfo),
                    ):
                        if detail.Is(cls.DESCRIPTOR):
                            message = cls()
                            detail.Unpack(message)
                            setattr(self, attr, message)

    @property
    def reason(self) -> str:
        assert self.error_info is not None, "every error carries an ErrorInfo"
        assert self.error_info.domain == "messagelog"
        return self.error_info.reason

    @property
    def fields(self) -> set[str]:
        assert self.bad_request is not None
        return {v.field for v in self.bad_request.field_violations}
