"""The service's own view of a logging request, independent of protobuf and of any CRM."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

# How UserInfo.zone_label writes a fixed offset (see service.validation).
_OFFSET_LABEL = re.compile(r"UTC([+-])(\d{2}):(\d{2})")


class Kind(StrEnum):
    """What a CRM record holds: a day of one conversation, or a single voicemail or fax."""

    SMS = "sms"
    VOICEMAIL = "voicemail"
    FAX = "fax"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Outcome(StrEnum):
    CREATED = "created"
    APPENDED = "appended"
    ALREADY_LOGGED = "already_logged"


@dataclass(frozen=True)
class UserInfo:
    """The CRM user a message is logged for; zone_label names zone: an IANA name, or a fixed
    offset written UTC+05:30 (see zone_from_label)."""

    id: str
    hostname: str
    zone: tzinfo
    zone_label: str
    name: str
    platform_additional_info: Mapping[str, str] = field(default_factory=dict)


def zone_from_label(label: str) -> tzinfo:
    """The zone a UserInfo.zone_label names, for a zone stored with a digest."""
    offset = _OFFSET_LABEL.fullmatch(label)
    if offset is None:
        return ZoneInfo(label)
    sign = -1 if offset[1] == "-" else 1
    return timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3])))


@dataclass(frozen=True)
class ContactInfo:
    id: str
    name: str
    phone_number: str
    type: str
    organization_id: str
    organization_name: str


@dataclass(frozen=True)
class MediaLink:
    """An image, video or document a person can open from the CRM record."""

    url: str
    content_type: str


@dataclass(frozen=True)
class Entry:
    """One message as a CRM record shows it; stored so a record can always be written whole."""

    message_id: str
    created_at: datetime
    direction: Direction
    text: str
    sender_name: str
    sender_phone: str
    media: tuple[MediaLink, ...] = ()
    recording_link: str = ""
    fax_doc_link: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Entry:
        data: dict[str, Any] = json.loads(raw)
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        data["direction"] = Direction(data["direction"])
        data["media"] = tuple(MediaLink(**m) for m in data["media"])
        return cls(**data)

    @property
    def created_ms(self) -> int:
        return int(self.created_at.astimezone(UTC).timestamp() * 1000)


@dataclass(frozen=True)
class LogRequest:
    """A validated AddMessageLog or UpdateMessageLog call."""

    crm: str
    user: UserInfo
    contact: ContactInfo
    kind: Kind
    conversation_id: str
    entry: Entry
    additional_submission: Mapping[str, str]
    authorization: str
    log_id: str = ""
    # The CRM account written to, as the CRM named it for the call's credential (verify_account).
    account: str = ""
    # The credential's user, where the CRM's identity reply names it by id; else "".
    account_user_id: str = ""

    @property
    def local_date(self) -> date:
        return self.entry.created_at.astimezone(self.user.zone).date()

    @property
    def scope(self) -> str:
        """Who a message is logged for: the unit inside which a message id is logged once."""
        parts = (self.crm, self.account.lower(), self.user.id, self.contact.id)
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    @property
    def thread_key(self) -> str:
        """What one CRM record gathers: a conversation (per day) or one voicemail or fax."""
        if self.kind is Kind.SMS:
            return f"sms:{self.conversation_id}"
        return f"{self.kind.value}:{self.entry.message_id}"
