"""A fake Salesforce org (REST API v62.0): the Task sObject, with Salesforce's auth, errors and API limit.

Errors are a JSON array of {"message", "errorCode", "fields"}. Create answers 201
{"id", "success", "errors"}; update answers 204 with no body. The org has a request allowance
(reported in Sforce-Limit-Info); past it, Salesforce answers 403 REQUEST_LIMIT_EXCEEDED, never 429.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

_TASK_FIELDS = {
    "Subject",
    "Description",
    "WhoId",
    "WhatId",
    "ActivityDate",
    "Status",
    "Priority",
    "OwnerId",
    "TaskSubtype",
}
# Fields Salesforce lets a client set on create but not change afterwards.
_CREATE_ONLY = {"TaskSubtype"}
_STATUSES = {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
_SUBTYPES = {"Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"}
_LIMITS = {"Subject": 255, "Description": 32_000}
_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
# Key prefixes: the sObject an id belongs to.
_WHO_PREFIXES = ("003", "00Q")
_OWNER_PREFIX = "005"
_LEAD_PREFIX = "00Q"


def _errors(status: int, code: str, message: str, fields: list[str] | None = None) -> FakeResponse:
    return FakeResponse(status, [{"message": message, "errorCode": code, "fields": fields or []}])


class FakeSalesforce(FakeCrm):
    name = "salesforce"
    identity_route = r"/services/oauth2/userinfo"

    def __init__(self, *, token: str = "sf-token", daily_requests: int = 15_000) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.org_id = "00DAk000001Acme"
        self.token = token
        self.daily_requests = daily_requests
        self.used_requests = 0
        self.tasks: dict[str, dict[str, Any]] = {}
        self._next_id = 0
        self.route("POST", r"/services/data/v62\.0/sobjects/Task", self._create)
        self.route("PATCH", r"/services/data/v62\.0/sobjects/Task/([A-Za-z0-9]+)", self._update)
        self.route("GET", r"/services/oauth2/userinfo", self._userinfo)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.used_requests >= self.daily_requests:
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.used_requests += 1
        return None

    def rate_limit_headers(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.used_requests}/{self.daily_requests}"}

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    @staticmethod
    def _check(task: Any, *, creating: bool) -> FakeResponse | None:
        if not isinstance(task, dict):
            return _errors(400, "JSON_PARSER_ERROR", "Expected a JSON object for the Task")
        unknown = sorted(set(task) - _TASK_FIELDS)
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Task")
        fixed = [] if creating else sorted(set(task) & _CREATE_ONLY)
        if fixed:
            return _errors(
                400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {fixed[0]}", fixed
            )
        for name, limit in _LIMITS.items():
            if len(str(task.get(name, ""))) > limit:
                return _errors(400, "STRING_TOO_LONG", f"{name}: data value too large", [name])
        problem = _bad_value(task)
        return _errors(400, *problem) if problem else None

    def _create(self, request: FakeRequest) -> FakeResponse:
        task = request.body
        refusal = self._check(task, creating=True)
        if refusal:
            return refusal
        who = str(task.get("WhoId", ""))
        if not (_ID.fullmatch(who) and who.startswith(_WHO_PREFIXES)):
            return _errors(400, "MALFORMED_ID", "Who ID: id value of incorrect type", ["WhoId"])
        if who.startswith(_LEAD_PREFIX) and task.get("WhatId"):
            return _errors(
                400, "FIELD_INTEGRITY_EXCEPTION", "When the Name field is a lead, Related To must be blank"
            )
        self._next_id += 1
        task_id = f"00T{self._next_id:012d}AAA"
        self.tasks[task_id] = dict(task)
        return FakeResponse(201, {"id": task_id, "success": True, "errors": []})

    def _update(self, request: FakeRequest, task_id: str) -> FakeResponse:
        if task_id not in self.tasks:
            return self.not_found(request)
        refusal = self._check(request.body, creating=False)
        if refusal:
            return refusal
        self.tasks[task_id].update(request.body)
        return FakeResponse(204)

    def _userinfo(self, request: FakeRequest) -> FakeResponse:
        # GET /services/oauth2/userinfo: the user and org of the token (OpenID Connect).
        return FakeResponse(
            200,
            {
                "sub": f"https://login.salesforce.com/id/{self.org_id}/005Ak00000XyZ12IAB",
                "user_id": "005Ak00000XyZ12IAB",
                "organization_id": self.org_id,
                "name": "Alice Agent",
            },
        )

    record_store = "tasks"
    body_path = ("Description",)
    write_path = r"^/services/data/v62\.0/sobjects/Task"


def _bad_value(task: dict[str, Any]) -> tuple[str, str] | None:
    """The error code and message Salesforce gives a field value of the wrong kind."""
    picklist = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    if "Status" in task and task["Status"] not in _STATUSES:
        return picklist, f"Status: bad value for restricted picklist field: {task['Status']}"
    if "TaskSubtype" in task and task["TaskSubtype"] not in _SUBTYPES:
        return picklist, f"TaskSubtype: bad value for restricted picklist field: {task['TaskSubtype']}"
    if "ActivityDate" in task and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(task["ActivityDate"])):
        return "INVALID_TYPE_ON_FIELD_IN_RECORD", "ActivityDate: value not of required type"
    owner = str(task.get("OwnerId", _OWNER_PREFIX + "0" * 12))
    if not (_ID.fullmatch(owner) and owner.startswith(_OWNER_PREFIX)):
        return "MALFORMED_ID", "Owner ID: id value of incorrect type"
    what = task.get("WhatId")
    if what is not None and not _ID.fullmatch(str(what)):
        return "MALFORMED_ID", "What ID: id value of incorrect type"
    return None
