"""Turns request protos into a LogRequest, or raises InvalidRequest naming every bad field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

from service.adapters.base import account_url_problem, host_problem, record_id_problem
from service.errors import FieldViolation, InvalidRequest, RequestTooLarge, UnknownCrm
from service.model import ContactInfo, Direction, Entry, Kind, LogRequest, MediaLink, UserInfo

# A request's encoded size. gRPC itself refuses requests over MAX_REQUEST_BYTES_RECEIVED, with a
# bare status; between the two the refusal is ours, with its reason.
MAX_REQUEST_BYTES = 256 * 1024
MAX_REQUEST_BYTES_RECEIVED = 4 * MAX_REQUEST_BYTES
MAX_ID_CHARS = 255
MAX_NAME_CHARS = 255
MAX_TEXT_CHARS = 10_000
MAX_LINK_CHARS = 2_048
MAX_ATTACHMENTS = 20
MAX_EXTRA_ENTRIES = 20
# Older than the message store itself, or later than a clock could plausibly drift.
EARLIEST_MESSAGE = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_PHONE = re.compile(r"^\+?[0-9]{2,20}$")
_CRM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_URL_VALUE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_KINDS = {
    pb.MESSAGE_TYPE_SMS: Kind.SMS,
    pb.MESSAGE_TYPE_PAGER: Kind.SMS,
    pb.MESSAGE_TYPE_VOICEMAIL: Kind.VOICEMAIL,
    pb.MESSAGE_TYPE_FAX: Kind.FAX,
}
_DIRECTIONS = {
    pb.MESSAGE_DIRECTION_INBOUND: Direction.INBOUND,
    pb.MESSAGE_DIRECTION_OUTBOUND: Direction.OUTBOUND,
}
_SHOWN_MEDIA = ("image/", "video/", "audio/", "application/pdf")

Request = service_pb.AddMessageLogRequest | service_pb.UpdateMessageLogRequest


class _Checker:
    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def text(self, field: str, value: str, *, limit: int, required: bool = False) -> str:
        if required and not value.strip():
            self.fail(field, "is required")
        elif len(value) > limit:
            self.fail(field, f"is longer than {limit} characters")
        elif "\x00" in value:
            self.fail(field, "contains a NUL character")
        return value.strip()

    def problem(self, field: str, value: str, problem: str | None) -> str:
        """Records `problem` (from a checker of the adapter base) against field; returns value."""
        if value and problem is not None:
            self.fail(field, problem)
        return value

    def phone(self, field: str, value: str) -> str:
        value = value.strip()
        if value and not _PHONE.match(value):
            self.fail(field, "must be a phone number of 2 to 20 digits, optionally starting with +")
        return value

    def link(self, field: str, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        if len(value) > MAX_LINK_CHARS:
            self.fail(field, f"is longer than {MAX_LINK_CHARS} characters")
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
            self.fail(field, "must be an http or https URL")
            return ""
        return value


def parse_request(request: Request, *, authorization: str, known_crms: tuple[str, ...]) -> LogRequest:
    if request.ByteSize() > MAX_REQUEST_BYTES:
        raise RequestTooLarge(f"the request is larger than {MAX_REQUEST_BYTES // 1024} KiB")
    crm = request.crm.strip().lower()
    if not _CRM_NAME.match(crm) or crm not in known_crms:
        raise UnknownCrm(request.crm[:40], known_crms)
    check = _Checker()

    user = _user(check, request.user)
    contact = _contact(check, request.contact)
    kind, conversation_id, entry = _message(check, request)

    extras: dict[str, str] = {}
    if len(request.additional_submission) > MAX_EXTRA_ENTRIES:
        check.fail("additional_submission", f"has more than {MAX_EXTRA_ENTRIES} entries")
    else:
        for key, value in sorted(request.additional_submission.items()):
            extras[key] = check.text(f"additional_submission[{key[:40]}]", value, limit=MAX_ID_CHARS)

    log_id = ""
    if isinstance(request, service_pb.UpdateMessageLogRequest):
        log_id = check.text("log_id", request.log_id, limit=MAX_ID_CHARS, required=True)
        check.problem("log_id", log_id, record_id_problem(log_id))

    if check.violations or user is None or entry is None or kind is None:
        raise InvalidRequest(check.violations)
    return LogRequest(
        crm=crm,
        user=user,
        contact=contact,
        kind=kind,
        conversation_id=conversation_id,
        entry=entry,
        additional_submission=extras,
        authorization=authorization,
        log_id=log_id,
    )


def _user(check: _Checker, user: pb.CrmUser) -> UserInfo | None:
    user_id = check.text("user.id", user.id, limit=MAX_ID_CHARS, required=True)
    hostname = check.text("user.hostname", user.hostname, limit=253).lower()
    check.problem("user.hostname", hostname, host_problem(hostname))
    name = check.text("user.name", user.name, limit=MAX_NAME_CHARS)
    zone = _zone(check, user.time_zone.strip(), user.timezone_offset.strip())
    info = {}
    for key, value in sorted(user.platform_additional_info.items()):
        field = f"user.platform_additional_info[{key[:40]}]"
        info[key] = check.text(field, value, limit=MAX_LINK_CHARS)
        # An account URL (Salesforce's instance_url, Zoho's api_domain, Bullhorn's rest_url) is
        # where credentials go: scheme, host and plain path only, whichever key carries it.
        if _URL_VALUE.match(info[key]):
            check.problem(field, info[key], account_url_problem(info[key]))
    if zone is None:
        return None
    return UserInfo(
        id=user_id,
        hostname=hostname,
        zone=zone[0],
        zone_label=zone[1],
        name=name,
        platform_additional_info=info,
    )


def _zone(check: _Checker, name: str, offset: str) -> tuple[tzinfo, str] | None:
    if name:
        try:
            if len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
                raise ValueError(name)
            return ZoneInfo(name), name
        # A name of a directory of the zone database (America) is an OSError, not "not found".
        except (ZoneInfoNotFoundError, ValueError, OSError):
            check.fail("user.time_zone", "must be an IANA time zone name such as America/New_York")
            return None
    if offset:
        match = _OFFSET.match(offset)
        if match is None or int(match[2]) > 14 or int(match[3]) >= 60:
            check.fail("user.timezone_offset", "must look like +05:30 or -08:00")
            return None
        delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
        sign = -1 if match[1] == "-" else 1
        return timezone(sign * delta), f"UTC{match[1]}{match[2]}:{match[3]}"
    check.fail("user.time_zone", "is required (or user.timezone_offset): digests are kept per local day")
    return None


def _contact(check: _Checker, contact: pb.Contact) -> ContactInfo:
    return ContactInfo(
        id=check.text("contact.id", contact.id, limit=MAX_ID_CHARS, required=True),
        name=check.text("contact.name", contact.name, limit=MAX_NAME_CHARS),
        phone_number=check.phone("contact.phone_number", contact.phone_number),
        type=check.text("contact.type", contact.type, limit=64),
        organization_id=check.text("contact.organization.id", contact.organization.id, limit=MAX_ID_CHARS),
        organization_name=check.text(
            "contact.organization.name", contact.organization.name, limit=MAX_NAME_CHARS
        ),
    )


def _message(check: _Checker, request: Request) -> tuple[Kind | None, str, Entry | None]:
    message = request.message
    message_id = check.text("message.id", message.id, limit=MAX_ID_CHARS, required=True)
    kind = _KINDS.get(message.type)
    if kind is None:
        check.fail("message.type", "must be SMS, PAGER, VOICEMAIL or FAX")
    direction = _DIRECTIONS.get(message.direction)
    if direction is None:
        check.fail("message.direction", "must be INBOUND or OUTBOUND")
    conversation_id = check.text(
        "message.conversation_id", message.conversation_id, limit=MAX_ID_CHARS, required=kind is Kind.SMS
    )
    text = check.text("message.subject", message.subject, limit=MAX_TEXT_CHARS)
    created_at = _creation_time(check, message)
    sender_name = check.text("message.sender.name", message.sender.name, limit=MAX_NAME_CHARS)
    sender_phone = check.phone("message.sender.phone_number", message.sender.phone_number)
    for i, party in enumerate(message.recipients):
        check.phone(f"message.recipients[{i}].phone_number", party.phone_number)
        check.text(f"message.recipients[{i}].name", party.name, limit=MAX_NAME_CHARS)
    media: list[MediaLink] = []
    if len(message.attachments) > MAX_ATTACHMENTS:
        check.fail("message.attachments", f"has more than {MAX_ATTACHMENTS} attachments")
    else:
        for i, attachment in enumerate(message.attachments):
            content_type = check.text(
                f"message.attachments[{i}].content_type", attachment.content_type, limit=128
            ).lower()
            link = check.link(f"message.attachments[{i}].link", attachment.link)
            if link and content_type.startswith(_SHOWN_MEDIA):
                media.append(MediaLink(url=link, content_type=content_type))
    recording_link = check.link("recording_link", request.recording_link)
    fax_doc_link = check.link("fax_doc_link", request.fax_doc_link)
    if kind is None or direction is None or created_at is None:
        return kind, conversation_id, None
    entry = Entry(
        message_id=message_id,
        created_at=created_at,
        direction=direction,
        text=text,
        sender_name=sender_name,
        sender_phone=sender_phone,
        media=tuple(media),
        recording_link=recording_link,
        fax_doc_link=fax_doc_link,
    )
    return kind, conversation_id, entry


def _creation_time(check: _Checker, message: pb.Message) -> datetime | None:
    if not message.HasField("creation_time"):
        check.fail("message.creation_time", "is required")
        return None
    seconds, nanos = message.creation_time.seconds, message.creation_time.nanos
    earliest, latest = EARLIEST_MESSAGE, datetime.now(UTC) + MAX_CLOCK_SKEW
    if not 0 <= nanos < 1_000_000_000 or not earliest.timestamp() <= seconds <= latest.timestamp():
        check.fail("message.creation_time", "must be between 2000-01-01 and one day from now")
        return None
    # Milliseconds are what the message store keeps; finer digits would only make ordering noisy.
    return datetime.fromtimestamp(seconds, UTC) + timedelta(milliseconds=nanos // 1_000_000)
