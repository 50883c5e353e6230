"""Every error messagelog reports, each knowing the gRPC status it becomes.

MessageLogError                       base: grpc_code, reason, retryable
├── InvalidRequest                    INVALID_ARGUMENT     INVALID_REQUEST (with field violations)
│   ├── UnknownCrm                    INVALID_ARGUMENT     UNKNOWN_CRM
│   ├── HostNotAllowed                INVALID_ARGUMENT     CRM_HOST_NOT_ALLOWED
│   └── UndecodableRequest            INVALID_ARGUMENT     UNDECODABLE_REQUEST
├── CredentialsMissing                UNAUTHENTICATED      CRM_CREDENTIALS_MISSING
├── CallerUnauthenticated             UNAUTHENTICATED      CALLER_UNAUTHENTICATED
├── CallerNotAllowed                  PERMISSION_DENIED    CALLER_NOT_ALLOWED
├── RequestTooLarge                   RESOURCE_EXHAUSTED   REQUEST_TOO_LARGE
├── PendingWorkExhausted              RESOURCE_EXHAUSTED   PENDING_WORK_LIMIT (retry_after)
├── HealthWatchesExhausted            RESOURCE_EXHAUSTED   HEALTH_WATCH_LIMIT
├── CrmNotConfigured                  FAILED_PRECONDITION  CRM_NOT_CONFIGURED
├── LogNotFound                       NOT_FOUND            LOG_NOT_FOUND
├── RecordKindMismatch                FAILED_PRECONDITION  RECORD_KIND_MISMATCH
├── RecordDayMismatch                 FAILED_PRECONDITION  RECORD_DAY_MISMATCH
├── DigestBusy                        UNAVAILABLE          DIGEST_BUSY
├── WriteUnsettled                    UNAVAILABLE          WRITE_UNSETTLED (retry_after)
├── StoreUnavailable                  UNAVAILABLE          STORE_UNAVAILABLE
└── CrmError                          raised by the adapter base from a CRM reply (http_status)
    ├── CrmAuthFailed                 FAILED_PRECONDITION  CRM_AUTH_FAILED
    ├── CrmRecordNotFound             NOT_FOUND            CRM_RECORD_NOT_FOUND
    ├── CrmRecordChanged              ABORTED              CRM_RECORD_CHANGED (the digest logic handles it)
    ├── CrmRejected                   FAILED_PRECONDITION  CRM_REJECTED
    ├── CrmRateLimited                UNAVAILABLE          CRM_RATE_LIMITED (retry_after)
    ├── CrmUnavailable                UNAVAILABLE          CRM_UNAVAILABLE
    ├── CrmTimeout                    UNAVAILABLE          CRM_TIMEOUT
    └── CrmBadResponse                INTERNAL             CRM_BAD_RESPONSE

Messages are written for the caller: they name what is wrong and never quote credentials or message
text. Only the servicer turns these into gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, reported as a google.rpc.BadRequest field violation."""

    field: str
    description: str


class MessageLogError(Exception):
    """Base of every error with a defined gRPC status."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[str] = "INTERNAL_ERROR"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Seconds after which a retry makes sense, reported as google.rpc.RetryInfo.
        self.retry_after = retry_after


class InvalidRequest(MessageLogError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_REQUEST"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}")


class UnknownCrm(InvalidRequest):
    reason = "UNKNOWN_CRM"

    def __init__(self, crm: str, known: Sequence[str]) -> None:
        super().__init__([FieldViolation("crm", f"unknown CRM {crm!r}; known: {', '.join(known)}")])


class HostNotAllowed(InvalidRequest):
    reason = "CRM_HOST_NOT_ALLOWED"

    def __init__(self, field: str, host: str, crm: str) -> None:
        super().__init__([FieldViolation(field, f"host {host!r} is not a {crm} host")])


class UndecodableRequest(InvalidRequest):
    """The request's bytes are not the method's message: not protobuf, or a string field that is
    not UTF-8 (which protobuf requires of every string)."""

    reason = "UNDECODABLE_REQUEST"

    def __init__(self, message_type: str) -> None:
        super().__init__(
            [
                FieldViolation(
                    "request",
                    f"not a valid {message_type}: not protobuf, or a string field is not UTF-8",
                )
            ]
        )


class CredentialsMissing(MessageLogError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    reason = "CRM_CREDENTIALS_MISSING"


class CallerUnauthenticated(MessageLogError):
    """The calling service proved no identity (no valid client certificate or bearer token)."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    reason = "CALLER_UNAUTHENTICATED"


class CallerNotAllowed(MessageLogError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    reason = "CALLER_NOT_ALLOWED"


class RequestTooLarge(MessageLogError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "REQUEST_TOO_LARGE"


class PendingWorkExhausted(MessageLogError):
    """The server's memory budget for calls in progress is spent: one more would risk the process."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "PENDING_WORK_LIMIT"
    retryable = True


class HealthWatchesExhausted(MessageLogError):
    """As many Health Watch streams are open as the service allows (MESSAGELOG_MAX_HEALTH_WATCHES)."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "HEALTH_WATCH_LIMIT"
    retryable = True


class CrmNotConfigured(MessageLogError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "CRM_NOT_CONFIGURED"


class LogNotFound(MessageLogError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "LOG_NOT_FOUND"


class RecordKindMismatch(MessageLogError):
    """UpdateMessageLog named a record that cannot hold this message as what it is: a voicemail or
    fax record holds its own message only, and a conversation digest holds SMS."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "RECORD_KIND_MISMATCH"


class RecordDayMismatch(MessageLogError):
    """UpdateMessageLog named a record of another local day than the message's (in the zone the
    record is rendered in)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "RECORD_DAY_MISMATCH"


class DigestBusy(MessageLogError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "DIGEST_BUSY"
    retryable = True


class WriteUnsettled(MessageLogError):
    """A write to this digest's record got no answer a moment ago; the CRM may still apply it."""

    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "WRITE_UNSETTLED"
    retryable = True


class StoreUnavailable(MessageLogError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"
    retryable = True


class CrmError(MessageLogError):
    """An error the CRM reported, or a failure to reach it; http_status is 0 when no reply came.

    maybe_applied: the request may have taken effect in the CRM (it was sent and no clear answer
    came back). in_flight: no reply came at all (a timeout, a dropped connection), so the CRM may
    still apply the request later, after newer writes.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 0,
        maybe_applied: bool | None = None,
        in_flight: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.http_status = http_status
        self.maybe_applied = self.retryable if maybe_applied is None else maybe_applied
        self.in_flight = in_flight
        # How many times the request was sent before this error ended it (see request_response).
        self.attempts = 1
        # The CRM's own error code and a short message (see HttpCrmAdapter.error_fields), for the
        # caller's ErrorInfo; "" when the reply had none, or the message quoted the request.
        self.crm_code = ""
        self.crm_message = ""


class CrmAuthFailed(CrmError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "CRM_AUTH_FAILED"


class CrmRecordNotFound(CrmError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "CRM_RECORD_NOT_FOUND"


class CrmRecordChanged(CrmError):
    """A conditional write was refused: the record changed since the version it expected (HTTP 412).

    Not retried as it is: the record is read again first. The digest logic handles it, so it does
    not reach callers.
    """

    grpc_code = grpc.StatusCode.ABORTED
    reason = "CRM_RECORD_CHANGED"


class CrmRejected(CrmError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "CRM_REJECTED"


class CrmRateLimited(CrmError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "CRM_RATE_LIMITED"
    retryable = True

    def __init__(
        self, message: str, *, http_status: int, retry_after: float | None, maybe_applied: bool = False
    ) -> None:
        super().__init__(
            message, http_status=http_status, maybe_applied=maybe_applied, retry_after=retry_after
        )


class CrmUnavailable(CrmError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "CRM_UNAVAILABLE"
    retryable = True


class CrmTimeout(CrmError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "CRM_TIMEOUT"
    retryable = True


class CrmBadResponse(CrmError):
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "CRM_BAD_RESPONSE"
