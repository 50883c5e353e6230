"""Zoho CRM: each record is a plain-text Note on the contact's (or lead's) record, API v8.

- Host: the account's data centre, www.zohoapis.{com,eu,in,com.au,jp,com.cn,ca,sa}, read from
  user.platform_additional_info["api_domain"] (the api_domain of Zoho's OAuth token response, such as
  https://www.zohoapis.eu). user.hostname is not used. The .ca and .sa hosts are in the official
  SDK's data centres.
- Auth: crm-authorization carries the exact Authorization header value, "Zoho-oauthtoken <token>".
- Identity: GET /crm/v8/org names the organization of the token: org[0].id (official SDK
  zoho/zohocrm-python-sdk-8.0, org/org_operations.py and org/response_wrapper.py).
- contact.type "lead"/"leads" (any case) puts the note on a Lead; anything else on a Contact.
- additional_submission: not used.
- CRM calls (the SDK's notes/notes_operations.py): create is one POST /crm/v8/Notes with
  Note_Title, Note_Content and Parent_Id {id, module {api_name}} (notes/parent_id.py, and
  samples/notes/create_notes.py); an append is GET /crm/v8/Notes/{id}?fields=Note_Content (a person's
  edit of the note is found and kept) then one PUT /crm/v8/Notes/{id} with Note_Title and Note_Content.
- A create that got no clear answer is looked for before creating again: GET /crm/v8/Notes with
  fields, sort_by=Created_Time, sort_order=desc, per_page=200 (GetNotesParam), page by page until the
  notes are older than the create, matching the digest reference in Note_Content.
- Zoho reports each record's outcome inside the reply (data[0].status), so a "success" HTTP status
  with an "error" record is refused here as a rejection.
- Unverified (no official source read): that Notes sort by Created_Time (the SDK has sort_by but not
  its values); that a GET of notes without any answers 204 with no body.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from service.adapters.base import (
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import digits_id
from service.errors import CrmBadResponse, CrmRejected
from service.render import BodyFormat, RenderedRecord

_API_DOMAIN = "api_domain"
_NOTES = "/crm/v8/Notes"
# GetNotesParam.per_page's largest value, and how many pages a search for a lost create reads.
_PER_PAGE = 200
_SEARCH_PAGES = 5


class ZohoAdapter(HttpCrmAdapter):
    name = "zoho"
    error_fields = ErrorFields(code_at=("code",), message_at=("message",))
    body_format = BodyFormat.TEXT
    host_patterns = (r"www\.zohoapis\.(com|eu|in|com\.au|jp|com\.cn|ca|sa)",)
    account_url_key = _API_DOMAIN
    # The organization the token belongs to (www.zohoapis.* is shared by every organization).
    identity = AccountLookup("/crm/v8/org", account_at=("org", 0, "id"))
    reads_records = True
    finds_created = True

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        digits_id("contact.id", call.contact.id, "Zoho CRM")

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        module = "Leads" if call.contact.type.strip().lower() in ("lead", "leads") else "Contacts"
        parent = {"id": digits_id("contact.id", call.contact.id, "Zoho CRM"), "module": {"api_name": module}}
        body = await self.request(
            call, "POST", _NOTES, json=_note(record, Parent_Id=parent), operation="create_note"
        )
        return Written(record_id(_outcome(body), "details", "id"))

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call, "GET", _note_path(log_id), params={"fields": "Note_Content"}, operation="get_note"
        )
        note = field_at(body, "data", 0)
        return CurrentRecord(str(note.get("Note_Content") or "") if isinstance(note, dict) else "")

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # The organization's newest notes first, back to a minute before the create was sent.
        oldest = since - timedelta(minutes=1)
        for page in range(1, _SEARCH_PAGES + 1):
            body = await self.request(
                call,
                "GET",
                _NOTES,
                params={
                    "fields": "Note_Content,Created_Time",
                    "sort_by": "Created_Time",
                    "sort_order": "desc",
                    "per_page": str(_PER_PAGE),
                    "page": str(page),
                },
                operation="find_note",
            )
            if body is None:  # no notes at all
                return None
            notes = field_at(body, "data")
            for note in notes if isinstance(notes, list) else []:
                if isinstance(note, dict) and marker in str(note.get("Note_Content") or ""):
                    return record_id(note, "id")
            if not isinstance(notes, list) or not notes or _created(notes[-1]) < oldest:
                return None
            info = body.get("info") if isinstance(body, dict) else None
            if not (isinstance(info, dict) and info.get("more_records")):
                return None
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        body = await self.request(
            call, "PUT", _note_path(log_id), json=_note(record), operation="update_note"
        )
        _outcome(body)
        return Written(log_id)


def _note(record: RenderedRecord, **more: Any) -> dict[str, Any]:
    return {"data": [{"Note_Title": record.subject, "Note_Content": record.body, **more}]}


def _note_path(log_id: str) -> str:
    return f"{_NOTES}/{digits_id('log_id', log_id, 'Zoho CRM')}"


def _created(note: Any) -> datetime:
    """A listed note's Created_Time (ISO 8601 with its offset)."""
    try:
        return datetime.fromisoformat(str(field_at(note, "Created_Time")))
    except ValueError:
        raise CrmBadResponse("the CRM reply's Created_Time is not a time") from None


def _outcome(body: Any) -> Any:
    outcome = field_at(body, "data", 0)
    if field_at(outcome, "status") != "success":
        code = str(outcome.get("code", "unknown"))[:64]
        raise CrmRejected(f"zoho refused the note ({code})")
    return outcome
