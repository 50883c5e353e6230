"""Salesforce: each record is a completed Task (REST API v62.0) on the contact or lead.

- Host: the org's instance_url from Salesforce's OAuth token response, passed in
  user.platform_additional_info["instance_url"]: https://{MyDomain}.my.salesforce.com, or a
  partitioned My Domain such as {MyDomain}--{sandbox}.sandbox.my.salesforce.com (also develop,
  scratch, demo, patch and trailblaze orgs). user.hostname is not used.
- Auth: crm-authorization is sent as the Authorization header ("Bearer <access token>").
- Task fields: Subject, Description (the plain-text digest), WhoId = contact.id (a Contact or Lead
  id), ActivityDate (the digest's local day), Status "Completed", TaskSubtype "Task" (an SMS is not
  a call; TaskSubtype can only be set on create), and OwnerId = user.id when it is a User id (005...).
- additional_submission: "opportunity", else "account", becomes WhatId. Salesforce refuses a WhatId
  on a task whose WhoId is a Lead, so it is not sent for leads.
- Description holds at most 32,000 characters; a longer digest keeps its beginning and ends with a
  note saying it was cut, because refusing it would leave the whole day unlogged. Our store keeps
  every message, so nothing is lost on our side.
- CRM calls: create is one POST /services/data/v62.0/sobjects/Task; append is one
  PATCH /services/data/v62.0/sobjects/Task/{id} (answered 204, no body).
- Salesforce signals its API request limits with 403 REQUEST_LIMIT_EXCEEDED, not 429: that is a
  rate limit here; any other 403 stays a refusal of the credentials.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written, record_id, retry_after
from service.errors import CrmError, CrmRateLimited, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord

_TASKS = "/services/data/v62.0/sobjects/Task"
_INSTANCE_URL = "instance_url"
_DESCRIPTION_LIMIT = 32_000
_CUT_NOTE = "\n[Cut at Salesforce's 32,000-character limit for task comments.]"
_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
_LEAD_PREFIX = "00Q"
_USER_PREFIX = "005"


class SalesforceAdapter(HttpCrmAdapter):
    name = "salesforce"
    body_format = BodyFormat.TEXT
    host_patterns = (
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\.((sandbox|develop|scratch|demo|patch|trailblaze)\.)?my\.salesforce\.com",
    )
    account_url_key = _INSTANCE_URL
    # The org the token belongs to, from the identity (OpenID Connect userinfo) endpoint.
    identity = AccountLookup("/services/oauth2/userinfo", account_at=("organization_id",), name_at=("name",))

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
                retry_after=retry_after(response),
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
