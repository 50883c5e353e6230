"""Zoho CRM: each record is a plain-text Note on the contact's (or lead's) record, API v8.

- Host: the account's data centre, www.zohoapis.{com,eu,in,com.au,jp,com.cn,ca,sa}, read from
  user.platform_additional_info["api_domain"] (the api_domain of Zoho's OAuth token response, such as
  https://www.zohoapis.eu). user.hostname is not used. The .ca and .sa API hosts are taken from Zoho's
  multi-DC table for Bigin, which shares Zoho's API domains; Zoho CRM's own table lists only the others.
- Auth: crm-authorization carries the exact Authorization header value, "Zoho-oauthtoken <token>".
- contact.type "lead"/"leads" (any case) puts the note on a Lead; anything else on a Contact.
- additional_submission: not used.
- CRM calls: create is one POST /crm/v8/{Contacts|Leads}/{contact.id}/Notes (the parent is in the path,
  so no Parent_Id); append is one PUT /crm/v8/Notes/{id}. Both send Note_Title and Note_Content.
- Zoho reports each record's outcome inside the reply (data[0].status), so a "success" HTTP status
  with an "error" record is refused here as a rejection.
"""

from __future__ import annotations

from typing import Any

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written, field_at, record_id
from service.adapters.fields import digits_id
from service.errors import CrmRejected
from service.render import BodyFormat, RenderedRecord

_API_DOMAIN = "api_domain"


class ZohoAdapter(HttpCrmAdapter):
    name = "zoho"
    body_format = BodyFormat.TEXT
    host_patterns = (r"www\.zohoapis\.(com|eu|in|com\.au|jp|com\.cn|ca|sa)",)
    account_url_key = _API_DOMAIN
    # The organization the token belongs to (www.zohoapis.* is shared by every organization).
    identity = AccountLookup("/crm/v8/org", account_at=("org", 0, "id"))

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        digits_id("contact.id", call.contact.id, "Zoho CRM")

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        module = "Leads" if call.contact.type.strip().lower() in ("lead", "leads") else "Contacts"
        body = await self.request(
            call,
            "POST",
            f"/crm/v8/{module}/{digits_id('contact.id', call.contact.id, 'Zoho CRM')}/Notes",
            json=_note(record),
            operation="create_note",
        )
        return Written(record_id(_outcome(body), "details", "id"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        body = await self.request(
            call,
            "PUT",
            f"/crm/v8/Notes/{digits_id('log_id', log_id, 'Zoho CRM')}",
            json=_note(record),
            operation="update_note",
        )
        _outcome(body)
        return Written(log_id)


def _note(record: RenderedRecord) -> dict[str, Any]:
    return {"data": [{"Note_Title": record.subject, "Note_Content": record.body}]}


def _outcome(body: Any) -> Any:
    outcome = field_at(body, "data", 0)
    if field_at(outcome, "status") != "success":
        code = str(outcome.get("code", "unknown"))[:64]
        raise CrmRejected(f"zoho refused the note ({code})")
    return outcome
