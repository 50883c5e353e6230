"""NetSuite: each record is a phoneCall (REST record service) whose message holds the plain-text digest.

- Host: user.hostname names the account by one of its account-specific domains,
  <account ID>.<service>.netsuite.com ("REST Web Services URL Schema and Account-Specific URLs"):
  the UI host <account>.app.netsuite.com that users (and the system this service replaces) store,
  or the REST host <account>.suitetalk.api.netsuite.com. Requests go to the REST host of the same
  account label under /services/rest. Oracle advises reading an account's domains from its Company
  URLs page rather than building them ("URLs for Account-Specific Domains"); the label is shared by
  an account's domains, which is what the derivation relies on. A sandbox account ID is the
  production ID with _SB1, _SB2... ("About Sandbox Accounts"); its domains carry it lower-case with
  a hyphen (1234567-sb1.app.netsuite.com): seen in Oracle's and integrators' examples, unverified
  as a rule.
- Auth: crm-authorization is sent as the Authorization header (an OAuth 2.0 "Bearer <token>").
- Identity: a token belongs to the account it was issued in, and an authenticated read at another
  account's host is refused with 401 (WWW-Authenticate names the realm, "the account ID for which
  the data are requested": "RESTlets and REST Web Services Authentication Errors"). So one GET of
  record/v1/metadata-catalog/phonecall at the account's REST host verifies the token; the account is
  the host's label, written as NetSuite writes account IDs (1234567_SB1). That another account's
  token is refused rather than served is inferred, not stated (unverified).
- Record: title is the subject, message the digest, status {"id": "COMPLETE"} (enumeration values
  are written by internal ID as {"id": ...} since 2021.1: "Format of Enumeration Values"; the
  COMPLETE id itself is unverified), startDate the digest's local date, contact the contact and
  company the contact's organization when given ({"id": internal id}: "Format of Selects and
  References").
- additional_submission: "salesOrder" (an internal id) links the call to that sales order through
  the phoneCall's transaction field.
- CRM calls: create is one POST record/v1/phonecall, answered 204 with the new record's URL in the
  Location header; append is a GET record/v1/phonecall/{id}?fields=message (a person's edit is
  found and kept) and one PATCH phonecall/{id} with the title and the whole message.
- Lost create: one SuiteQL query (POST query/v1/suiteql with Prefer: transient, "Using SuiteQL
  with SuiteTalk REST Web Services") of the contact's phone calls created since the day before
  the create was sent (SuiteQL compares dates in the account's time zone; a day's slack covers
  every zone), whose message is matched against the digest's marker here. The phonecall table's
  columns in SuiteQL (contact, createddate, message) are from the Records Catalog's names,
  unverified.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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
from service.errors import CrmBadResponse
from service.render import BodyFormat, RenderedRecord

_SALES_ORDER_KEY = "salesOrder"
_PHONE_CALLS = "/record/v1/phonecall"
# The UI host of an account, from which its REST host is derived.
_APP_HOST = re.compile(r"([a-z0-9]+(?:-[a-z0-9]+)?)\.app\.netsuite\.com")
# How many of the contact's newest phone calls a lost create is looked for among.
_FIND_LIMIT = 50


class NetSuiteAdapter(HttpCrmAdapter):
    name = "netsuite"
    error_fields = ErrorFields(
        code_at=("o:errorDetails", 0, "o:errorCode"), message_at=("o:errorDetails", 0, "detail")
    )
    body_format = BodyFormat.TEXT
    # The REST host every request goes to (an app host is first turned into it).
    host_patterns = (r"[a-z0-9]+(-[a-z0-9]+)?\.suitetalk\.api\.netsuite\.com",)
    default_base_url = "https://{hostname}/services/rest"
    identity = AccountLookup("/record/v1/metadata-catalog/phonecall", account_at=())
    reads_records = True
    finds_created = True

    def account_url(self, call: CrmCall) -> str:
        host = call.user.hostname.lower()
        app = _APP_HOST.fullmatch(host)
        if app is not None:
            host = f"{app[1]}.suitetalk.api.netsuite.com"
        return f"https://{host}/services/rest"

    def account_in(self, call: CrmCall, reply: Any) -> str:
        label = (urlsplit(self.account_url(call)).hostname or "").split(".", 1)[0]
        return label.upper().replace("-", "_")

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        _links(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload = {
            "title": record.subject,
            "message": record.body,
            "status": {"id": "COMPLETE"},
            "startDate": record.local_date.isoformat(),
            **_links(call),
        }
        # NetSuite answers a create with an empty 204 whose Location header names the new record.
        reply = await self.request_response(
            call, "POST", _PHONE_CALLS, json=payload, operation="create_phonecall"
        )
        location = str(reply.headers.get("location", ""))
        new_id = urlsplit(location).path.rstrip("/").rpartition("/phonecall/")[2]
        if not new_id.isdigit():
            raise CrmBadResponse("netsuite answered create_phonecall without the new record in Location")
        return Written(new_id)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        path = f"{_PHONE_CALLS}/{digits_id('log_id', log_id, 'NetSuite')}"
        call_record = await self.read_fields(call, path, "message", operation="get_phonecall")
        return CurrentRecord(str(call_record.get("message") or ""))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        contact = digits_id("contact.id", call.contact.id, "NetSuite")
        day = (since - timedelta(days=1)).date().isoformat()
        query = (
            f"SELECT id, message FROM phonecall WHERE contact = {contact}"  # noqa: S608 (digits)
            f" AND createddate >= TO_DATE('{day}', 'YYYY-MM-DD') ORDER BY id DESC"
        )
        body = await self.request(
            call,
            "POST",
            "/query/v1/suiteql",
            json={"q": query},
            params={"limit": str(_FIND_LIMIT)},
            operation="find_phonecall",
            repeatable=True,
            headers={"Prefer": "transient"},
        )
        items = field_at(body, "items")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and marker in str(item.get("message") or ""):
                return record_id(item, "id")
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            f"{_PHONE_CALLS}/{digits_id('log_id', log_id, 'NetSuite')}",
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
