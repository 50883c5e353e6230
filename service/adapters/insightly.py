"""Insightly (API v3.1): each record is an Event linked to the contact, its details plain text.

- Host: user.hostname, the account's API host api.<pod>.insightly.com (e.g. api.na1.insightly.com,
  from the user's "API URL"); requests go to https://<host>/v3.1.
- Auth: crm-authorization is the whole Authorization header value, as for every CRM: HTTP Basic
  with the API key as user name and an empty password, "Basic " + base64("<api key>:").
  contact.id is the Insightly record id (digits); contact.type "lead" links a lead, else a contact.
- An Event rather than a Note: an event has a start and end time, so the record sits at the
  conversation's time on the contact's timeline and in the calendar.
- additional_submission: not used.
- Calls: create is one POST /Events carrying its LINKS (v3.1 takes sub-collections in the same
  request, so no event is ever left unlinked); an append is one PUT /Events, which changes only
  the fields sent (title, details and end time).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written, record_id
from service.adapters.fields import numeric_id
from service.render import BodyFormat, RenderedRecord


class InsightlyAdapter(HttpCrmAdapter):
    name = "insightly"
    body_format = BodyFormat.TEXT
    host_patterns = (r"api\.[a-z0-9]+\.insightly\.com",)
    default_base_url = "https://{hostname}/v3.1"
    # The Insightly instance the API key belongs to (pod hosts are shared by instances).
    identity = AccountLookup("/Instance", account_at=("INSTANCE_ID",))

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        self._link(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload: dict[str, Any] = {
            "TITLE": record.subject,
            "DETAILS": record.body,
            "START_DATE_UTC": _insightly_time(record.first_time),
            "END_DATE_UTC": _insightly_time(record.last_time),
            "ALL_DAY": False,
            "LINKS": [self._link(call)],
        }
        body = await self.request(call, "POST", "/Events", json=payload, operation="create_event")
        return Written(record_id(body, "EVENT_ID"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        payload = {
            "EVENT_ID": numeric_id("log_id", log_id, self.name),
            "TITLE": record.subject,
            "DETAILS": record.body,
            "END_DATE_UTC": _insightly_time(record.last_time),
        }
        await self.request(call, "PUT", "/Events", json=payload, operation="update_event")
        return Written(log_id)

    def _link(self, call: CrmCall) -> dict[str, Any]:
        return {
            "LINK_OBJECT_NAME": "Lead" if call.contact.type.lower() == "lead" else "Contact",
            "LINK_OBJECT_ID": numeric_id("contact.id", call.contact.id, self.name),
        }


def _insightly_time(moment: datetime) -> str:
    # Insightly's *_UTC fields are "yyyy-MM-dd HH:mm:ss" in UTC, without a zone designator.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
