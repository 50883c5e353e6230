"""Redtail CRM (public API v1): each record is a completed activity linked to the contact, in HTML.

UNVERIFIED: no official source for Redtail's activities API was found (paths, body fields,
`activity_code_id`, `repeats`, reply shapes, PATCH, GET, error bodies). Everything below is what
the previous product sent and read; the fake is strict only in what this adapter itself relies on.

- Host: user.hostname, the account's Redtail host (e.g. smf.crm3.redtailtechnology.com or
  crm.redtailtechnology.com); requests go to https://<host>/api/public/v1.
- Auth: crm-authorization is the whole Authorization header value, Redtail's UserKey scheme
  "Userkeyauth " + base64("<api key>:<user key>"); the user key comes from Redtail's
  /authentication at sign-in and does not expire. contact.id is the Redtail contact id (digits).
- Account: GET /authentication, the database the user key belongs to (authenticated_user.database_id;
  Redtail's older v1 REST help names the reply's DatabaseID and UserID, the public v1 shape is
  unverified). Shared hosts serve many databases.
- An activity rather than a contact note: it carries the conversation's start and end time and
  shows on the contact's activity list, as the previous product's records did.
- additional_submission: not used.
- Calls: create is one POST /activities, already completed and linked to the contact. An append
  reads the activity, GET /activities/{id}, so a person's edit of its description is found and
  kept, then sends one PATCH /activities/{id} replacing subject, description and end time: two
  calls (no conditional write is known).
- A create whose reply was lost is created again: no documented way to list or search activities
  was found (a documented limit).
"""

from __future__ import annotations

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
from service.adapters.fields import numeric_id, utc_iso
from service.errors import CrmBadResponse
from service.render import BodyFormat, RenderedRecord

# The activity code the previous product logged every message under (in Redtail's default list).
_ACTIVITY_CODE_ID = 3


class RedtailAdapter(HttpCrmAdapter):
    name = "redtail"
    error_fields = ErrorFields(code_at=None, message_at=("message",))
    body_format = BodyFormat.HTML
    host_patterns = (r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+redtailtechnology\.com",)
    default_base_url = "https://{hostname}/api/public/v1"
    # The database the user key belongs to (shared hosts serve many databases).
    identity = AccountLookup("/authentication", account_at=("authenticated_user", "database_id"))
    reads_records = True

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        numeric_id("contact.id", call.contact.id, self.name)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload: dict[str, Any] = {
            "subject": record.subject,
            "description": record.body,
            "start_date": utc_iso(record.first_time),
            "end_date": utc_iso(record.last_time),
            "all_day": False,
            "activity_code_id": _ACTIVITY_CODE_ID,
            "repeats": "never",
            "completed": True,
            "linked_contacts": [{"contact_id": numeric_id("contact.id", call.contact.id, self.name)}],
        }
        body = await self.request(call, "POST", "/activities", json=payload, operation="create_activity")
        return Written(record_id(body, "activity", "id"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            self._path(log_id),
            json={
                "subject": record.subject,
                "description": record.body,
                "end_date": utc_iso(record.last_time),
            },
            operation="update_activity",
        )
        return Written(log_id)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(call, "GET", self._path(log_id), operation="get_activity")
        activity = field_at(body, "activity")
        if not isinstance(activity, dict) or "description" not in activity:
            raise CrmBadResponse("the redtail activity has no description")
        # A description a person emptied may come back null.
        return CurrentRecord(str(activity["description"] or ""))

    def _path(self, log_id: str) -> str:
        return f"/activities/{numeric_id('log_id', log_id, self.name)}"
