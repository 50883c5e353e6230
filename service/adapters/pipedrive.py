"""Pipedrive: each record is an activity (v2 API) whose note holds the HTML digest.

- Host: user.hostname, the company domain such as acme.pipedrive.com.
- Auth: crm-authorization is sent as the Authorization header (an OAuth "Bearer <token>").
- Identity: GET /api/v1/users/me names the company the token belongs to (data.company_id, the
  account key) and the user (data.name), in one call.
- The contact is the activity's primary participant (`participants [{person_id, primary: true}]`):
  API v2 refuses a top-level `person_id` as read-only ("Add a primary participant to set
  'person_id' instead", Pipedrive's v1-to-v2 migration guide and the live API as quoted in
  Pipedrive's developer community; the generated SDK pipedrive/client-nodejs still lists it).
- additional_submission: "deals" (a deal id) links the activity to a deal; otherwise "leads" (a lead id).
- The activity type is the account's own, by kind: an active type named SMS for an SMS, Voicemail
  for a voicemail, Fax for a fax; failing that, the account's call type (a voicemail and a fax come
  by phone, and so does an SMS without its own type). Types come from GET /api/v1/activityTypes
  (key_string, name, icon_key, active_flag: SDK src/versions/v1/models/activity-type.ts), looked up
  once an hour per account.
- due_date and due_time ("YYYY-MM-DD", "HH:MM", UTC) are the earliest message's: an append sends them
  again, so a message older than the first one to arrive (a newest-first backfill) moves them back.
- CRM calls: create is one POST /api/v2/activities; an append is GET then PATCH
  /api/v2/activities/{id} (the read finds a person's edit of the note, which is kept as they left it).
- A create that got no clear answer is looked for before creating again: GET /api/v2/activities with
  person_id (the primary participant), updated_since (RFC 3339) and limit 500 (the SDK's
  ActivitiesApi.getActivities), matching the digest reference in the note.
- v1 paths use the documented /api/v1/ prefix (developers.pipedrive.com; the SDK's v1 base path is
  /v1, which Pipedrive still answers).
- Unverified (no official source read): whether Pipedrive refuses an inactive activity type; whether
  the 500 activities of one page always reach back to the lost create (cursor paging is not followed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from service.adapters.base import (
    LOOKUP_TTL_SECONDS,
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    TtlCache,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import numeric_id, utc_iso
from service.model import Kind
from service.render import BodyFormat, RenderedRecord

_ACTIVITIES = "/api/v2/activities"
# The name of the account's own activity type for each kind, where it has one.
_OWN_TYPE = {Kind.SMS: "sms", Kind.VOICEMAIL: "voicemail", Kind.FAX: "fax"}
# Pipedrive's built-in call type, and its icon (which a renamed or custom call type keeps).
_CALL = "call"


class PipedriveAdapter(HttpCrmAdapter):
    name = "pipedrive"
    error_fields = ErrorFields(code_at=("code",), message_at=("error",))
    body_format = BodyFormat.HTML
    host_patterns = (r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.pipedrive\.com",)
    identity = AccountLookup("/api/v1/users/me", account_at=("data", "company_id"), name_at=("data", "name"))
    reads_records = True
    finds_created = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._activity_types: TtlCache[str, Mapping[Kind, str]] = TtlCache(LOOKUP_TTL_SECONDS)

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        numeric_id("contact.id", call.contact.id, "Pipedrive")
        if call.contact.organization_id:
            numeric_id("contact.organization.id", call.contact.organization_id, "Pipedrive")
        self._links(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        types = await self._types_by_kind(call)
        payload: dict[str, Any] = {
            "subject": record.subject,
            "type": types[record.kind],
            "note": record.body,
            "done": True,
            **_due(record),
            "participants": [
                {"person_id": numeric_id("contact.id", call.contact.id, "Pipedrive"), "primary": True}
            ],
            **self._links(call),
        }
        if call.user.id.isdigit():
            payload["owner_id"] = int(call.user.id)
        if call.contact.organization_id:
            payload["org_id"] = numeric_id(
                "contact.organization.id", call.contact.organization_id, "Pipedrive"
            )
        body = await self.request(call, "POST", _ACTIVITIES, json=payload, operation="create_activity")
        return Written(record_id(body, "data", "id"))

    async def prepare_create(self, call: CrmCall) -> None:
        await self._types_by_kind(call)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(call, "GET", _activity_path(log_id), operation="get_activity")
        data = field_at(body, "data")
        return CurrentRecord(str(data.get("note") or "") if isinstance(data, dict) else "")

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # A create that got no answer may have made the activity: look among the person's
        # activities changed since it was sent (with a minute's slack for clock differences).
        body = await self.request(
            call,
            "GET",
            _ACTIVITIES,
            params={
                "person_id": str(numeric_id("contact.id", call.contact.id, "Pipedrive")),
                "updated_since": utc_iso(since - timedelta(minutes=1)),
                "limit": "500",
            },
            operation="find_activity",
        )
        activities = field_at(body, "data")
        for activity in activities if isinstance(activities, list) else []:
            if isinstance(activity, dict) and marker in str(activity.get("note") or ""):
                return record_id(activity, "id")
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        payload = {"subject": record.subject, "note": record.body, **_due(record), **self._links(call)}
        await self.request(call, "PATCH", _activity_path(log_id), json=payload, operation="update_activity")
        return Written(log_id)

    async def _types_by_kind(self, call: CrmCall) -> Mapping[Kind, str]:
        async def fetch() -> Mapping[Kind, str]:
            body = await self.request(call, "GET", "/api/v1/activityTypes", operation="list_activity_types")
            listed = field_at(body, "data")
            active = [
                item
                for item in (listed if isinstance(listed, list) else [])
                if isinstance(item, dict) and item.get("active_flag") and item.get("key_string")
            ]
            return {kind: _type_for(active, own) for kind, own in _OWN_TYPE.items()}

        return await self._activity_types.get_or_fetch(call.account, fetch)

    @staticmethod
    def _links(call: CrmCall) -> dict[str, Any]:
        if deal := call.extras.get("deals", ""):
            return {"deal_id": numeric_id("additional_submission[deals]", deal, "Pipedrive")}
        if lead := call.extras.get("leads", ""):
            return {"lead_id": lead}
        return {}


def _type_for(active: list[dict[str, Any]], own: str) -> str:
    """The key_string of the account's type named `own`, else of its call type, else "call"."""

    def named(item: dict[str, Any]) -> bool:
        return own in (str(item["key_string"]).lower(), str(item.get("name", "")).lower())

    def builtin_call(item: dict[str, Any]) -> bool:
        return str(item["key_string"]) == _CALL

    def call_icon(item: dict[str, Any]) -> bool:
        return item.get("icon_key") == _CALL

    for wanted in (named, builtin_call, call_icon):
        found = next((item for item in active if wanted(item)), None)
        if found is not None:
            return str(found["key_string"])
    return _CALL


def _due(record: RenderedRecord) -> dict[str, str]:
    """The activity's date and time: the earliest message's, in UTC."""
    first = record.first_time.astimezone(UTC)
    return {"due_date": first.strftime("%Y-%m-%d"), "due_time": first.strftime("%H:%M")}


def _activity_path(log_id: str) -> str:
    return f"{_ACTIVITIES}/{numeric_id('log_id', log_id, 'Pipedrive')}"
