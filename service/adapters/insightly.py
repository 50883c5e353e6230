"""Insightly (API v3.1): each record is an Event linked to the contact, its details plain text.

- Host: user.hostname, the account's API host api.<pod>.insightly.com (e.g. api.na1.insightly.com,
  from the user's "API URL"); requests go to https://<host>/v3.1.
- Auth: crm-authorization is the whole Authorization header value, as for every CRM: HTTP Basic
  with the API key as user name and an empty password, "Basic " + base64("<api key>:").
  contact.id is the Insightly record id (digits); contact.type "lead" links a lead, else a contact.
- Account: GET /Instance, the instance the API key belongs to, named by its INSTANCE_SUBDOMAIN
  (<subdomain>.insightly.com; pods serve many instances). Insightly's swagger models the
  instance as INSTANCE_NAME, INSTANCE_SUBDOMAIN, PLAN_NAME: it has no instance id.
- An Event rather than a Note: an event has a start and end time, so the record sits at the
  conversation's time on the contact's timeline and in the calendar.
- additional_submission: not used.
- Calls: create is one POST /Events carrying its LINKS (v3.1 takes sub-collections in the same
  request, so no event is ever left unlinked). An append reads the event, GET /Events/{id}, so a
  person's edit of its DETAILS is found and kept, then sends one PUT /Events, which changes only
  the fields sent (title, details and end time): two calls. Insightly has no conditional write.
- A create whose reply was lost is found, not made twice: GET /Events/Search with
  updated_after_utc (the create's send time less a clock margin), brief=true, top=500; the event
  whose DETAILS hold the digest's reference is ours. More than 500 events of the instance
  changed within those minutes would hide it (a documented limit, not followed through pages).
- Sources: Insightly's swagger as generated into client libraries (sterner-stuff/insightly-php,
  v3.1: /Events, /Events/{id}, /Events/Search with updated_after_utc, /Instance; ljfc and
  ciaranmahoney codegens, v2.2/v3.0: the Instance model), and api.na1.insightly.com/v3.1 (partial
  PUT, sub-collections). Not verified: the error body (documented nowhere; an ASP.NET
  {"Message"} is assumed), the accepted updated_after_utc form, and 429 behaviour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.adapters.base import (
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    Written,
    record_id,
)
from service.adapters.fields import created_after, numeric_id, utc_iso
from service.errors import CrmBadResponse
from service.render import BodyFormat, RenderedRecord

# The most events one search answers: `top` is at most 500 (Insightly's docs as quoted by
# Microsoft's Insightly connector notes; not read in Insightly's own pages).
_SEARCH_LIMIT = 500


class InsightlyAdapter(HttpCrmAdapter):
    name = "insightly"
    error_fields = ErrorFields(code_at=None, message_at=("Message",))
    body_format = BodyFormat.TEXT
    host_patterns = (r"api\.[a-z0-9]+\.insightly\.com",)
    default_base_url = "https://{hostname}/v3.1"
    # The instance the API key belongs to (pod hosts are shared by instances).
    identity = AccountLookup("/Instance", account_at=("INSTANCE_SUBDOMAIN",))
    reads_records = True
    finds_created = True

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

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call, "GET", f"/Events/{numeric_id('log_id', log_id, self.name)}", operation="get_event"
        )
        return CurrentRecord(_details(body))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        body = await self.request(
            call,
            "GET",
            "/Events/Search",
            params={
                "updated_after_utc": utc_iso(created_after(since)),
                "brief": "true",
                "top": str(_SEARCH_LIMIT),
            },
            operation="find_event",
        )
        for event in body if isinstance(body, list) else []:
            if marker in _details(event):
                return record_id(event, "EVENT_ID")
        return None

    def _link(self, call: CrmCall) -> dict[str, Any]:
        return {
            "LINK_OBJECT_NAME": "Lead" if call.contact.type.lower() == "lead" else "Contact",
            "LINK_OBJECT_ID": numeric_id("contact.id", call.contact.id, self.name),
        }


def _details(event: Any) -> str:
    """An event's DETAILS; null where a person emptied them."""
    if not isinstance(event, dict) or "DETAILS" not in event:
        raise CrmBadResponse("the insightly event has no DETAILS")
    return str(event["DETAILS"] or "")


def _insightly_time(moment: datetime) -> str:
    # Insightly's *_UTC fields are "yyyy-MM-dd HH:mm:ss" in UTC, without a zone designator.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
