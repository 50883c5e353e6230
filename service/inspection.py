"""GetMessageLog and ListMessageLogs: what happened to a message, for the account a credential proves.

Both answer from the store only (no CRM record is read), and never with text, phone numbers or
credentials. A caller sees an account's messages only with a credential that the account's CRM
accepts, like the writing RPCs; the servicer checks the caller's CRMs before this runs. The
failed calls they report are recorded here too (record_failure), by the servicer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from dataclasses import dataclass, replace
from datetime import date

from google.protobuf import timestamp_pb2
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

from service.adapters.base import CrmCall, HttpCrmAdapter
from service.errors import CrmError, FieldViolation, InvalidRequest, MessageLogError
from service.model import ContactInfo, Kind, LogRequest, UserInfo
from service.store.store import FailedCall, LogState, MessageLog, MessageLogFilter, Store
from service.validation import MAX_ID_CHARS

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATES = {
    LogState.PENDING: pb.LOG_STATE_PENDING,
    LogState.LOGGED: pb.LOG_STATE_LOGGED,
    LogState.FAILED: pb.LOG_STATE_FAILED,
}
# GetMessageLog without a contact answers for the contact whose message is least far along.
_PROGRESS = {LogState.FAILED: 0, LogState.PENDING: 1, LogState.LOGGED: 2}
_TYPES = {
    Kind.SMS: pb.MESSAGE_TYPE_SMS,
    Kind.VOICEMAIL: pb.MESSAGE_TYPE_VOICEMAIL,
    Kind.FAX: pb.MESSAGE_TYPE_FAX,
}
_NOBODY = ContactInfo(id="", name="", phone_number="", type="", organization_id="", organization_name="")


@dataclass(frozen=True)
class Account:
    """A CRM account a call's credential proved: the CRM and the account as LogRequest.account."""

    crm: str
    key: str


async def account_of(adapter: HttpCrmAdapter, call: CrmCall) -> Account:
    """The account the call's credential belongs to, as the CRM says (verify_account, cached per
    credential) and as the writing RPCs key everything (LogRequest.account). A credential the CRM
    refuses raises CrmAuthFailed: a caller sees only accounts its credential proves."""
    verified = await adapter.verify_account(call)
    return Account(adapter.name, verified.key)


def reading_call(user: UserInfo, authorization: str, deadline: float) -> CrmCall:
    """The CRM call of a read: no contact, no extras; only what finds and proves the account."""
    return CrmCall(user=user, contact=_NOBODY, authorization=authorization, extras={}, deadline=deadline)


class Inspector:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, request: service_pb.GetMessageLogRequest, account: Account) -> pb.MessageLogRecord:
        message_id = _id("message_id", request.message_id, required=True)
        contact_id = _id("contact_id", request.contact_id)
        which = MessageLogFilter(
            crm=account.crm,
            account=account.key,
            user_id=request.user.id.strip(),
            contact_id=contact_id,
            message_id=message_id,
        )
        # A message is logged at most once per contact; a group message, for each of its contacts.
        found = await self._store.message_logs(which, limit=MAX_PAGE_SIZE)
        if not found:
            return pb.MessageLogRecord(
                message_id=message_id, state=pb.LOG_STATE_UNKNOWN, contact_id=contact_id
            )
        return _record(min(found, key=lambda m: (_PROGRESS[m.state], m.contact_id)))

    async def list(
        self, request: service_pb.ListMessageLogsRequest, account: Account
    ) -> service_pb.ListMessageLogsResponse:
        violations: list[FieldViolation] = []
        conversation_id = _id("conversation_id", request.conversation_id, violations=violations)
        which = MessageLogFilter(
            crm=account.crm,
            account=account.key,
            user_id=_id("user_id", request.user_id, violations=violations),
            contact_id=_id("contact_id", request.contact_id, violations=violations),
            thread_key=f"sms:{conversation_id}" if conversation_id else "",
            start_date=_date("start_date", request.start_date, violations),
            end_date=_date("end_date", request.end_date, violations),
        )
        if request.page_size < 0:
            violations.append(FieldViolation("page_size", "must not be negative"))
        if violations:
            raise InvalidRequest(violations)
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        fingerprint = _fingerprint(which)
        after = _read_token(request.page_token, fingerprint) if request.page_token else None
        # One more than asked says whether another page follows.
        found = await self._store.message_logs(which, after=after, limit=size + 1)
        page = found[:size]
        next_token = _token(page[-1].key, fingerprint) if len(found) > size else ""
        return service_pb.ListMessageLogsResponse(
            message_logs=[_record(m) for m in page], next_page_token=next_token
        )

    async def record_failure(self, request: LogRequest, account: Account, error: MessageLogError) -> None:
        """Counts a failed call that handed request's message over, for GetMessageLog's "why not"."""
        http_status = error.http_status if isinstance(error, CrmError) else 0
        failed = FailedCall(error.grpc_code.name, error.reason, http_status or 0, int(time.time() * 1000))
        await self._store.record_failure(replace(request, account=account.key), failed)


def _id(
    field: str, value: str, *, required: bool = False, violations: list[FieldViolation] | None = None
) -> str:
    problem = ""
    if required and not value.strip():
        problem = "is required"
    elif len(value) > MAX_ID_CHARS or not value.isprintable():
        problem = f"must be at most {MAX_ID_CHARS} printable characters"
    if problem:
        if violations is None:
            raise InvalidRequest([FieldViolation(field, problem)])
        violations.append(FieldViolation(field, problem))
        return ""
    return value.strip()


def _date(field: str, value: str, violations: list[FieldViolation]) -> str:
    value = value.strip()
    if not value:
        return ""
    try:
        if not _DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value).isoformat()
    except ValueError:
        violations.append(FieldViolation(field, "must be a date as YYYY-MM-DD"))
        return ""


def _fingerprint(which: MessageLogFilter) -> str:
    """What a page token is bound to: the account and every filter (AIP-158)."""
    fields = (which.crm, which.account, which.user_id, which.contact_id, which.thread_key)
    return hashlib.sha256("\x1f".join((*fields, which.start_date, which.end_date)).encode()).hexdigest()[:16]


def _token(key: tuple[str, str, str], fingerprint: str) -> str:
    raw = json.dumps({"after": list(key), "for": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> tuple[str, str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = data["after"]
        if data["for"] != fingerprint:
            raise InvalidRequest(
                [FieldViolation("page_token", "was returned for other filters or another account")]
            )
        if not (isinstance(after, list) and len(after) == 3 and all(isinstance(k, str) for k in after)):
            raise ValueError(token)
        return after[0], after[1], after[2]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidRequest(
            [FieldViolation("page_token", "is not a next_page_token this service returned")]
        ) from None


def _record(log: MessageLog) -> pb.MessageLogRecord:
    kind = Kind(log.kind)
    attempts = log.failures + (0 if log.state is LogState.FAILED else 1)
    record = pb.MessageLogRecord(
        message_id=log.message_id,
        state=_STATES[log.state],
        log_id=log.crm_log_id or "",
        local_date=log.local_date,
        type=_TYPES[kind],
        attempts=attempts,
        user_id=log.crm_user_id,
        contact_id=log.contact_id,
        conversation_id=log.thread_key.removeprefix("sms:") if kind is Kind.SMS else "",
    )
    if log.last_failure is not None:
        failure = log.last_failure
        at = timestamp_pb2.Timestamp()
        at.FromMilliseconds(failure.at_ms)
        record.last_failure.CopyFrom(
            pb.FailedAttempt(
                status=failure.status, reason=failure.reason, time=at, crm_http_status=failure.crm_http_status
            )
        )
    return record
