"""generic: an in-house CRM with a small JSON API, reached at MESSAGELOG_CRM_GENERIC_BASE_URL.

- POST {base_url}/activity creates a record and answers {"id": "<record id>"} (any 2xx).
- PUT {base_url}/activity/{id} replaces the record's content (any 2xx, body ignored).
- Both send the JSON document below; "body" is plain text and always the whole record.
- Auth: crm-authorization is sent as the Authorization header. user.hostname is not used.

    {"kind": "sms" | "voicemail" | "fax", "subject": str, "body": str, "body_format": "text",
     "local_date": "YYYY-MM-DD", "first_message_time": RFC 3339, "last_message_time": RFC 3339,
     "message_count": int, "user_id": str,
     "contact": {"id": str, "name": str, "phone_number": str, "type": str},
     "additional_submission": {str: str}}
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from service.adapters.base import CrmCall, HttpCrmAdapter, VerifiedAccount, Written, record_id
from service.render import BodyFormat, RenderedRecord


class GenericAdapter(HttpCrmAdapter):
    name = "generic"
    body_format = BodyFormat.TEXT
    default_base_url = None

    async def verify_account(self, call: CrmCall) -> VerifiedAccount:
        # The generic CRM is one service of the operator's, configured by its base URL: that is
        # its one account. Its API has no identity call, so the credential is checked by its writes.
        return VerifiedAccount(f"{self.name}:{self.base_url(call)}")

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        body = await self.request(
            call, "POST", "/activity", json=_document(call, record), operation="create_activity"
        )
        return Written(record_id(body, "id"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PUT",
            f"/activity/{quote(log_id, safe='')}",
            json=_document(call, record),
            operation="update_activity",
        )
        return Written(log_id)


def _document(call: CrmCall, record: RenderedRecord) -> dict[str, Any]:
    contact = call.contact
    return {
        "kind": record.kind.value,
        "subject": record.subject,
        "body": record.body,
        "body_format": "text",
        "local_date": record.local_date.isoformat(),
        "first_message_time": record.first_time.isoformat().replace("+00:00", "Z"),
        "last_message_time": record.last_time.isoformat().replace("+00:00", "Z"),
        "message_count": record.message_count,
        "user_id": call.user.id,
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "phone_number": contact.phone_number,
            "type": contact.type,
        },
        "additional_submission": dict(call.extras),
    }
