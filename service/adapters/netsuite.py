"""NetSuite: each record is a phoneCall (REST record service) whose message holds the plain-text digest.

- Host: user.hostname, the account's REST host {accountId}.suitetalk.api.netsuite.com (a sandbox
  account 1234567_SB1 is 1234567-sb1); requests go to /services/rest/record/v1.
- Auth: crm-authorization is sent as the Authorization header (an OAuth 2.0 "Bearer <token>").
- Record: title is the subject, message the digest, status COMPLETE, startDate the digest's local
  date, contact the contact and company the contact's organization when given (internal ids).
- additional_submission: "salesOrder" (an internal id) links the call to that sales order through
  the phoneCall's transaction field.
- CRM calls: create is one POST phonecall, answered 204 with the new record's URL in the Location
  header; append is one PATCH phonecall/{id} with the title and the whole message. No lookups.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written
from service.adapters.fields import digits_id
from service.errors import CrmBadResponse
from service.render import BodyFormat, RenderedRecord

_SALES_ORDER_KEY = "salesOrder"


class NetSuiteAdapter(HttpCrmAdapter):
    name = "netsuite"
    body_format = BodyFormat.TEXT
    host_patterns = (r"[a-z0-9]+(-[a-z0-9]+)?\.suitetalk\.api\.netsuite\.com",)
    default_base_url = "https://{hostname}/services/rest/record/v1"
    # NetSuite refuses a token at another account's host, so any authenticated read verifies
    # it; the account is the host's account part.
    identity = AccountLookup("/metadata-catalog/phonecall", account_at=())

    def account_in(self, call: CrmCall, reply: Any) -> str:
        return call.user.hostname.split(".", 1)[0].lower()

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        _links(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload = {
            "title": record.subject,
            "message": record.body,
            "status": "COMPLETE",
            "startDate": record.local_date.isoformat(),
            **_links(call),
        }
        # NetSuite answers a create with an empty 204 whose Location header names the new record.
        reply = await self.request_response(
            call, "POST", "/phonecall", json=payload, operation="create_phonecall"
        )
        location = str(reply.headers.get("location", ""))
        new_id = urlsplit(location).path.rstrip("/").rpartition("/phonecall/")[2]
        if not new_id.isdigit():
            raise CrmBadResponse("netsuite answered create_phonecall without the new record in Location")
        return Written(new_id)

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            f"/phonecall/{digits_id('log_id', log_id, 'NetSuite')}",
            json={"title": record.subject, "message": record.body},
            operation="update_phonecall",
        )
        return Written(log_id)


def _links(call: CrmCall) -> dict[str, Any]:
    links: dict[str, Any] = {"contact": {"id": digits_id("contact.id", call.contact.id, "NetSuite")}}
    if call.contact.organization_id:
        links["company"] = {
            "id": digits_id("contact.organization.id", call.contact.organization_id, "NetSuite")
        }
    if sales_order := call.extras.get(_SALES_ORDER_KEY, ""):
        links["transaction"] = {
            "id": digits_id(f"additional_submission[{_SALES_ORDER_KEY}]", sales_order, "NetSuite")
        }
    return links
