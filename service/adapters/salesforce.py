"""Salesforce: each record is a completed Task (REST API v62.0) on the contact or lead.

- Host: the org's instance_url from Salesforce's OAuth token response, passed in
  user.platform_additional_info["instance_url"]: https://{MyDomain}.my.salesforce.com, or a
  partitioned My Domain such as {MyDomain}--{sandbox}.sandbox.my.salesforce.com. Salesforce names
  the partitions: sandbox, demo, Developer Edition (develop), free, patch and scratch orgs, and
  Trailhead playgrounds (trailblaze) ("Call Salesforce URLs Within a Package", Salesforce
  packaging guide; the full host list is in Salesforce Help's "My Domain URL Formats", which we
  could not read: unverified beyond these names). user.hostname is not used.
- Identity: GET /services/oauth2/userinfo (OpenID Connect UserInfo: "Query for User Information",
  Salesforce Help, which documents it "for the current user" of the token) names the token's org in
  organization_id and the user in name; the org id keys everything kept for the account. The field
  names are from a sample reply in third-party client code (Salesforce's own sample was not
  readable), and that the endpoint answers at the My Domain host as at login.salesforce.com is
  unverified.
- Auth: crm-authorization is sent as the Authorization header ("Bearer <access token>").
- Task fields: Subject, Description (the plain-text digest), WhoId = contact.id (a Contact or Lead
  id), ActivityDate (the digest's local day), Status "Completed", TaskSubtype "Task" (an SMS is not
  a call; TaskSubtype can only be set on create), and OwnerId = user.id when it is a User id (005...).
- additional_submission: "opportunity", else "account", becomes WhatId. Salesforce refuses a WhatId
  on a task whose WhoId is a Lead, so it is not sent for leads.
- Description holds at most 32,000 characters; a longer digest keeps its beginning and ends with a
  note saying it was cut, because refusing it would leave the whole day unlogged. Our store keeps
  every message, so nothing is lost on our side.
- CRM calls: create is one POST /services/data/v62.0/sobjects/Task; append is a
  GET sobjects/Task/{id}?fields=Description (a person's edit is found and kept) and one
  PATCH sobjects/Task/{id} (answered 204, no body).
- Lost create: a create whose reply never came is looked for with one SOQL query (GET query?q=)
  of the contact's tasks created since it was sent, newest first, and the digest's marker is
  matched in their Description here: Description is a long text area, which a SOQL WHERE clause
  cannot filter ("fieldExpression Syntax", SOQL and SOSL Reference).
- Salesforce signals its API request limits with 403 REQUEST_LIMIT_EXCEEDED, not 429: that is a
  rate limit here; any other 403 stays a refusal of the credentials. The limit is the org's
  allowance over a rolling 24 hours, so a retry within seconds only spends calls: the error
  carries a wait of 15 minutes (our choice; Salesforce names none), which is longer than the
  service waits in-process, so it goes back to the caller as RetryInfo.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx

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
from service.adapters.fields import utc_iso
from service.errors import CrmError, CrmRateLimited, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord

_API = "/services/data/v62.0"
_TASKS = f"{_API}/sobjects/Task"
_INSTANCE_URL = "instance_url"
_DESCRIPTION_LIMIT = 32_000
_CUT_NOTE = "\n[Cut at Salesforce's 32,000-character limit for task comments.]"
_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
_LEAD_PREFIX = "00Q"
_USER_PREFIX = "005"
# The org's API allowance is counted over a rolling 24 hours: a wait worth telling the caller.
_REQUEST_LIMIT_WAIT_SECONDS = 900.0
# How many of the contact's newest tasks a lost create is looked for among.
_FIND_LIMIT = 200


class SalesforceAdapter(HttpCrmAdapter):
    name = "salesforce"
    error_fields = ErrorFields(code_at=(0, "errorCode"), message_at=(0, "message"))
    body_format = BodyFormat.TEXT
    host_patterns = (
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\.((sandbox|develop|free|scratch|demo|patch|trailblaze)\.)?my\.salesforce\.com",
    )
    account_url_key = _INSTANCE_URL
    # The org the token belongs to, from the identity (OpenID Connect userinfo) endpoint.
    identity = AccountLookup("/services/oauth2/userinfo", account_at=("organization_id",), name_at=("name",))
    reads_records = True
    finds_created = True

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        _salesforce_id("contact.id", call.contact.id)
        self._what(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        task: dict[str, Any] = {
            **_content(record),
            "WhoId": _salesforce_id("contact.id", call.contact.id),
            "ActivityDate": record.local_date.isoformat(),
            "Status": "Completed",
            "TaskSubtype": "Task",
            **self._what(call),
        }
        if call.user.id.startswith(_USER_PREFIX) and _ID.fullmatch(call.user.id):
            task["OwnerId"] = call.user.id
        body = await self.request(call, "POST", _TASKS, json=task, operation="create_task")
        return Written(record_id(body, "id"))

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        # The sObject Rows GET with fields= answers only the fields asked for ("Get Field Values
        # from a Standard Object Record", REST API Developer Guide); an empty Description is null.
        path = f"{_TASKS}/{_salesforce_id('log_id', log_id)}"
        task = await self.read_fields(call, path, "Description", operation="get_task")
        return CurrentRecord(_description(task))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # The ids are checked to be 15 or 18 letters and digits, so they cannot break out of the
        # quotes; dateTime literals are unquoted (SOQL fieldExpression syntax). A minute's slack
        # covers clock differences between us and Salesforce.
        who = _salesforce_id("contact.id", call.contact.id)
        soql = (
            f"SELECT Id, Description FROM Task WHERE WhoId = '{who}'"  # noqa: S608 (a checked id)
            f" AND CreatedDate >= {utc_iso(since - timedelta(minutes=1))}"
            f" ORDER BY CreatedDate DESC LIMIT {_FIND_LIMIT}"
        )
        body = await self.request(call, "GET", f"{_API}/query", params={"q": soql}, operation="find_task")
        records = field_at(body, "records")
        for task in records if isinstance(records, list) else []:
            if isinstance(task, dict) and marker in _description(task):
                return record_id(task, "Id")
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            f"{_TASKS}/{_salesforce_id('log_id', log_id)}",
            json=_content(record),
            operation="update_task",
        )
        return Written(log_id)

    def error_for(self, response: httpx.Response, operation: str) -> CrmError:
        if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in _error_codes(response):
            return CrmRateLimited(
                f"{self.name} answered {operation} with HTTP 403: the org's API request limit is reached",
                http_status=403,
                retry_after=_REQUEST_LIMIT_WAIT_SECONDS,
            )
        return super().error_for(response, operation)

    @staticmethod
    def _what(call: CrmCall) -> dict[str, str]:
        if call.contact.id.startswith(_LEAD_PREFIX):
            return {}
        for key in ("opportunity", "account"):
            if value := call.extras.get(key, ""):
                return {"WhatId": _salesforce_id(f"additional_submission[{key}]", value)}
        return {}


def _content(record: RenderedRecord) -> dict[str, str]:
    description = record.body
    if len(description) > _DESCRIPTION_LIMIT:
        description = description[: _DESCRIPTION_LIMIT - len(_CUT_NOTE)] + _CUT_NOTE
    return {"Subject": record.subject, "Description": description}


def _description(task: dict[str, Any]) -> str:
    return str(task.get("Description") or "")


def _error_codes(response: httpx.Response) -> set[str]:
    try:
        errors = response.json()
    except ValueError:
        return set()
    if not isinstance(errors, list):
        return set()
    return {str(e.get("errorCode")) for e in errors if isinstance(e, dict)}


def _salesforce_id(field: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidRequest([FieldViolation(field, "must be a Salesforce id (15 or 18 letters and digits)")])
    return value
