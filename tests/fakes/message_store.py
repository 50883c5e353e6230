"""A made-up RingCentral message-store export (JSON lines) and the backfill context that goes with it.

Deterministic, so a test can say exactly how many digests a backfill creates: `expected_outcomes`
counts one record per conversation and local day for SMS and pager, and one per voicemail or fax.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

USER_PHONE = "+18885550052"
TIME_ZONE = "America/New_York"
START = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def contact_phone(conversation: int) -> str:
    return f"+1650555{conversation:04d}"


def _kind(index: int) -> str:
    if index % 40 == 39:
        return "Fax"
    if index % 20 == 9:
        return "VoiceMail"
    return "Pager" if index % 11 == 5 else "SMS"


def records(count: int, *, conversations: int = 10, minutes_apart: int = 9) -> list[dict[str, Any]]:
    """`count` messages round-robin over `conversations`, one every `minutes_apart` minutes."""
    out = []
    for i in range(count):
        conversation = i % conversations
        kind = _kind(i)
        contact = {"phoneNumber": contact_phone(conversation), "name": f"Contact {conversation}"}
        user = {"phoneNumber": USER_PHONE, "name": "Alice Agent"}
        inbound = i % 3 != 0
        record: dict[str, Any] = {
            "id": str(70_000_000 + i),
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/~/extension/~/message-store/{i}",
            "type": kind,
            "direction": "Inbound" if inbound else "Outbound",
            "from": contact if inbound else user,
            "to": [user if inbound else contact],
            "subject": f"Message {i} of the export",
            "creationTime": (START + timedelta(minutes=minutes_apart * i)).isoformat().replace("+00:00", "Z"),
            "readStatus": "Read",
            "messageStatus": "Received" if inbound else "Sent",
            "availability": "Alive",
            "priority": "Normal",
        }
        if kind in ("SMS", "Pager"):
            record["conversationId"] = f"conv-{conversation}"
        if kind == "VoiceMail":
            record["attachments"] = [{"id": f"a{i}", "type": "AudioRecording", "contentType": "audio/mpeg"}]
        if kind == "Fax":
            record["attachments"] = [
                {"id": f"a{i}", "type": "RenderedDocument", "contentType": "application/pdf"}
            ]
        out.append(record)
    return out


def context(conversations: int = 10) -> dict[str, Any]:
    """The backfill context file's content: one Pipedrive user and one contact per conversation."""
    return {
        "crm": "pipedrive",
        "user": {"id": "1001", "hostname": "acme.pipedrive.com", "time_zone": TIME_ZONE},
        "contacts": [
            {"id": str(100 + c), "name": f"Contact {c}", "phone_number": contact_phone(c)}
            for c in range(conversations)
        ],
    }


def expected_outcomes(exported: Iterable[dict[str, Any]]) -> dict[str, int]:
    zone = ZoneInfo(TIME_ZONE)
    digests: set[tuple[str, str]] = set()
    created = appended = 0
    for record in exported:
        if record["type"] in ("VoiceMail", "Fax"):
            created += 1
            continue
        local_day = datetime.fromisoformat(record["creationTime"]).astimezone(zone).date().isoformat()
        # Pager messages share their conversation's digest with its SMS.
        key = (record["conversationId"], local_day)
        if key in digests:
            appended += 1
        else:
            digests.add(key)
            created += 1
    return {"created": created, "appended": appended}


def write(path: Path, exported: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in exported))
    return path
