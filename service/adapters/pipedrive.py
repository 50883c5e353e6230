"""Pipedrive: each record is an activity (v2 API) whose note holds the HTML digest.

- Host: user.hostname, the company domain such as acme.pipedrive.com.
- Auth: crm-authorization is sent as the Authorization header (an OAuth "Bearer <token>").
- additional_submission: "deals" (a deal id) links the activity to a deal; otherwise "leads" (a lead id).
- An append reads the activity first (GET, then PATCH): a note a person edited is kept as they
  left it, with the later messages written after it.
- A create that got no clear answer is looked for before creating again: GET /api/v2/activities
  filtered by person_id and updated_since (the v2 list filters as documented for v2; person_id is
  assumed from v1's parameters), matching the digest reference in the note.
- The activity type is the account's active SMS type when it has one, else "call"; activity types
  and the user's name (when the caller doesn't send user.name) are looked up once an hour per account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from service.adapters.base import (
    LOOKUP_TTL_SECONDS,
    AccountLookup,
    CrmCall,
    CurrentRecord,
    HttpCrmAdapter,
    TtlCache,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import numeric_id, utc_iso
from service.render import BodyFormat, RenderedRecord


class PipedriveAdapter(HttpCrmAdapter):
    name = "pipedrive"
    body_format = BodyFormat.HTML
    host_patterns = (r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.pipedrive\.com",)
    # users/me names the company the token belongs to and the user, in one call.
    identity = AccountLookup("/v1/users/me", account_at=("data", "company_id"), name_at=("data", "name"))
    reads_records = True
    finds_created = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._activity_types: TtlCache[str, str] = TtlCache(LOOKUP_TTL_SECONDS)

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        numeric_id("contact.id", call.contact.id, "Pipedrive")
        if call.contact.organization_id:
            numeric_id("contact.organization.id", call.contact.organization_id, "Pipedrive")
        self._links(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        first = record.first_time
        payload: dict[str, Any] = {
            "subject": record.subject,
            "type": await self._activity_type(call),
            "note": record.body,
            "done": True,
            "due_date": first.strftime("%Y-%m-%d"),
            "due_time": first.strftime("%H:%M"),
            "person_id": numeric_id("contact.id", call.contact.id, "Pipedrive"),
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
        body = await self.request(
            call, "POST", "/api/v2/activities", json=payload, operation="create_activity"
        )
        return Written(record_id(body, "data", "id"))

    async def prepare_create(self, call: CrmCall) -> None:
        await self._activity_type(call)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call,
            "GET",
            f"/api/v2/activities/{numeric_id('log_id', log_id, 'Pipedrive')}",
            operation="get_activity",
        )
        data = field_at(body, "data")
        return CurrentRecord(str(data.get("note") or "") if isinstance(data, dict) else "")

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # A create that got no answer may have made the activity: look among the person's
        # activities changed since it was sent (with a minute's slack for clock differences).
        body = await self.request(
            call,
            "GET",
            "/api/v2/activities",
            params={
                "person_id": call.contact.id,
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
        payload = {"subject": record.subject, "note": record.body, **self._links(call)}
        await self.request(
            call,
            "PATCH",
            f"/api/v2/activities/{numeric_id('log_id', log_id, 'Pipedrive')}",
            json=payload,
            operation="update_activity",
        )
        return Written(log_id)

    async def _activity_type(self, call: CrmCall) -> str:
        async def fetch() -> str:
            body = await self.request(call, "GET", "/v1/activityTypes", operation="list_activity_types")
            types = field_at(body, "data")
            for item in types if isinstance(types, list) else []:
                if (
                    isinstance(item, dict)
                    and item.get("active_flag")
                    and (
                        str(item.get("key_string", "")).lower() == "sms"
                        or str(item.get("name", "")).lower() == "sms"
                    )
                ):
                    return str(item["key_string"])
            return "call"

        return await self._activity_types.get_or_fetch(call.account, fetch)

    @staticmethod
    def _links(call: CrmCall) -> dict[str, Any]:
        if deal := call.extras.get("deals", ""):
            return {"deal_id": numeric_id("additional_submission[deals]", deal, "Pipedrive")}
        if lead := call.extras.get("leads", ""):
            return {"lead_id": lead}
        return {}
