"""generic: an in-house CRM with a small JSON API, reached at MESSAGELOG_CRM_GENERIC_BASE_URL.

- POST {base_url}/activity creates a record and answers {"id": "<record id>"} (any 2xx).
- PUT {base_url}/activity/{id} replaces the record's content (any 2xx, body ignored).
- GET {base_url}/activity/{id} answers the record's document as last written, by us or by a
  person (at least {"body": str}); 404 when there is no such record.
- GET {base_url}/activity?ref={ref} answers {"activities": [{"id": str}, ...]}: the records whose
  document's "ref" is ref (an empty list when none).
- POST and PUT send the JSON document below; "body" is plain text and always the whole record;
  "ref" is the digest's reference ("" for a record that has none), also written at the end of body.
- Auth: crm-authorization is sent as the Authorization header. user.hostname is not used.

    {"kind": "sms" | "voicemail" | "fax", "subject": str, "body": str, "body_format": "text",
     "local_date": "YYYY-MM-DD", "first_message_time": RFC 3339, "last_message_time": RFC 3339,
     "message_count": int, "user_id": str, "ref": str,
     "contact": {"id": str, "name": str, "phone_number": str, "type": str},
     "additional_submission": {str: str}}

- Account: the generic CRM is one service of the operator's, configured by its base URL: that is
  its one account. The protocol has no identity call, so a credential is not checked before a
  call is filed: the service's own caller authentication and the CRM's refusal of the first write
  are all that stand between a wrong credential and a record (a documented limit).
- Calls: create is one POST; an append is one GET of the record (a person's edit of its body is
  kept) and one PUT: two calls. A create whose reply was lost is found by GET /activity?ref= (one
  call) instead of being made again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from service.adapters.base import (
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    VerifiedAccount,
    Written,
    field_at,
    record_id,
)
from service.render import BodyFormat, RenderedRecord, ref_in


class GenericAdapter(HttpCrmAdapter):
    name = "generic"
    error_fields = ErrorFields(code_at=None, message_at=("error",))
    body_format = BodyFormat.TEXT
    default_base_url = None
    reads_records = True
    finds_created = True

    async def verify_account(self, call: CrmCall) -> VerifiedAccount:
        # See the module docstring: the configured base URL is the one account.
        return VerifiedAccount(f"{self.name}:{self.base_url(call)}")

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        body = await self.request(
            call, "POST", "/activity", json=_document(call, record), operation="create_activity"
        )
        return Written(record_id(body, "id"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call, "PUT", _path(log_id), json=_document(call, record), operation="update_activity"
        )
        return Written(log_id)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(call, "GET", _path(log_id), operation="get_activity")
        return CurrentRecord(str(field_at(body, "body")))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        body = await self.request(
            call, "GET", "/activity", params={"ref": ref_in(marker)}, operation="find_activity"
        )
        found = field_at(body, "activities")
        if not isinstance(found, list) or not found:
            return None
        return record_id(found[0], "id")


def _path(log_id: str) -> str:
    return f"/activity/{quote(log_id, safe='')}"


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
        "ref": record.ref,
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "phone_number": contact.phone_number,
            "type": contact.type,
        },
        "additional_submission": dict(call.extras),
    }
