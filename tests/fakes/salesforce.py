"""A fake Salesforce org (REST API v62.0): the Task sObject, with Salesforce's auth, errors and API limit.

Errors are a JSON array of {"message", "errorCode", "fields"} ("Status Codes and Error
Responses", REST API Developer Guide). Create answers 201 {"id", "success", "errors"}; update
answers 204 with no body. A GET of a task with fields= answers those fields; a SOQL query answers
{"totalSize", "done", "records"}, each record with its "attributes". The org has a request
allowance (reported in Sforce-Limit-Info); past it, Salesforce answers 403 REQUEST_LIMIT_EXCEEDED,
never 429.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

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
# Fields a query can select but a client never writes.
_SYSTEM_FIELDS = {"Id", "CreatedDate"}
# Long text areas cannot be filtered in a SOQL WHERE clause ("fieldExpression Syntax", SOQL and
# SOSL Reference: "any field except a long text area field, encrypted data field, or
# base64-encoded field"). Task.Description is a long text area of 32,000 characters.
_LONG_TEXT = {"Description"}
_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
# The one SOQL shape the adapter sends: SELECT fields FROM Task WHERE a AND b ORDER BY f DESC LIMIT n.
_SOQL = re.compile(
    r"SELECT (?P<fields>[\w, ]+) FROM (?P<object>\w+) WHERE (?P<where>.+?)"
    r"(?: ORDER BY (?P<order>\w+)(?: (?P<direction>ASC|DESC))?)?(?: LIMIT (?P<limit>\d+))?",
    re.IGNORECASE,
)
_CONDITION = re.compile(
    r"(?P<field>\w+) (?P<op>=|>=) (?P<value>'[A-Za-z0-9]+'|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)
# Key prefixes: the sObject an id belongs to.
_WHO_PREFIXES = ("003", "00Q")
_OWNER_PREFIX = "005"
_LEAD_PREFIX = "00Q"


def _errors(status: int, code: str, message: str, fields: list[str] | None = None) -> FakeResponse:
    return FakeResponse(status, [{"message": message, "errorCode": code, "fields": fields or []}])


class FakeSalesforce(FakeCrm):
    name = "salesforce"
    identity_route = r"/services/oauth2/userinfo"
    documented_refusals: ClassVar[tuple[Refusal, ...]] = (
        Refusal(
            "POST",
            "/services/data/v62.0/sobjects/Task",
            {"Subject": "x", "WhoId": "003Ak00000AbCdEIAV", "Description": "x" * 32_001},
            400,
            (0, "message"),
            source="Task.Description holds at most 32,000 characters (Task, Object Reference for the "
            "Salesforce Platform; research/crm-api-audit.md, verified): STRING_TOO_LONG",
        ),
        Refusal(
            "POST",
            "/services/data/v62.0/sobjects/Task",
            {"Subject": "x", "WhoId": "003Ak00000AbCdEIAV", "ActivityDate": "20/11/2026"},
            400,
            (0, "message"),
            source="Task.ActivityDate is a date, written YYYY-MM-DD in JSON (Task, Object Reference; "
            "Valid Date and DateTime Formats, SOQL and SOSL Reference)",
        ),
        Refusal(
            "POST",
            "/services/data/v62.0/sobjects/Task",
            {"Subject": "x", "WhoId": "003Ak00000AbCdEIAV", "Notes": "y"},
            400,
            (0, "message"),
            source="an unknown field is INVALID_FIELD (Status Codes and Error Responses, REST API Guide)",
        ),
    )

    def __init__(self, *, token: str = "sf-token", daily_requests: int = 15_000) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.org_id = "00DAk000001Acme"
        self.token = token
        self.daily_requests = daily_requests
        self.used_requests = 0
        self.tasks: dict[str, dict[str, Any]] = {}
        self.created_at: dict[str, datetime] = {}
        self._next_id = 0
        self.route("POST", r"/services/data/v62\.0/sobjects/Task", self._create)
        self.route("PATCH", r"/services/data/v62\.0/sobjects/Task/([A-Za-z0-9]+)", self._update)
        self.route("GET", r"/services/data/v62\.0/sobjects/Task/([A-Za-z0-9]+)", self._read)
        self.route("GET", r"/services/data/v62\.0/query", self._query)
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
        self.created_at[task_id] = datetime.now(UTC)
        return FakeResponse(201, {"id": task_id, "success": True, "errors": []})

    def _update(self, request: FakeRequest, task_id: str) -> FakeResponse:
        if task_id not in self.tasks:
            return self.not_found(request)
        refusal = self._check(request.body, creating=False)
        if refusal:
            return refusal
        self.tasks[task_id].update(request.body)
        return FakeResponse(204)

    def _read(self, request: FakeRequest, task_id: str) -> FakeResponse:
        # GET sobjects/Task/{id}?fields=a,b answers those fields ("Get Field Values from a
        # Standard Object Record"); a field that does not exist is a 400.
        names = [n for n in request.query.get("fields", "").split(",") if n]
        unknown = [n for n in names if n not in _TASK_FIELDS | _SYSTEM_FIELDS]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Task'")
        if task_id not in self.tasks:
            return self.not_found(request)
        row = self._row(task_id)
        return FakeResponse(200, {n: row.get(n) for n in names or sorted(row)})

    def _row(self, task_id: str) -> dict[str, Any]:
        created = self.created_at[task_id].strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return {**self.tasks[task_id], "Id": task_id, "CreatedDate": created}

    def _query(self, request: FakeRequest) -> FakeResponse:
        # GET query?q=SOQL ("Execute a SOQL Query", REST API Developer Guide).
        soql = _SOQL.fullmatch(request.query.get("q", "").strip())
        if soql is None or soql["object"] != "Task":
            return _errors(400, "MALFORMED_QUERY", "unexpected token in the query")
        selected = [f.strip() for f in soql["fields"].split(",")]
        conditions = [_CONDITION.fullmatch(c.strip()) for c in soql["where"].split(" AND ")]
        named = selected + [c["field"] for c in conditions if c] + [soql["order"] or "Id"]
        unknown = [n for n in named if n not in _TASK_FIELDS | _SYSTEM_FIELDS]
        if unknown:
            return _errors(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Task'")
        if any(c is None for c in conditions):
            return _errors(400, "MALFORMED_QUERY", f"unexpected condition in: {soql['where']}")
        filtered = [c["field"] for c in conditions if c and c["field"] in _LONG_TEXT]
        if filtered:
            return _errors(400, "INVALID_FIELD", f"field '{filtered[0]}' can not be filtered in a query call")
        rows = [self._row(i) for i in self.tasks]
        for c in conditions:
            assert c is not None
            if c["op"] == "=":
                rows = [r for r in rows if str(r.get(c["field"])) == c["value"].strip("'")]
            elif c["field"] != "CreatedDate":
                return _errors(400, "MALFORMED_QUERY", f"the fake compares only CreatedDate with {c['op']}")
            else:
                since = datetime.strptime(c["value"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                rows = [r for r in rows if self.created_at[r["Id"]] >= since]
        rows.sort(key=lambda r: str(r.get(soql["order"] or "Id")), reverse=soql["direction"] == "DESC")
        rows = rows[: int(soql["limit"] or 2000)]
        records = [
            {
                "attributes": {"type": "Task", "url": f"/services/data/v62.0/sobjects/Task/{r['Id']}"},
                **{n: r.get(n) for n in selected},
            }
            for r in rows
        ]
        return FakeResponse(200, {"totalSize": len(records), "done": True, "records": records})

    def _userinfo(self, request: FakeRequest) -> FakeResponse:
        # GET /services/oauth2/userinfo: the user and org of the token ("Query for User
        # Information", Salesforce Help; the field names are unverified, see the adapter).
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
