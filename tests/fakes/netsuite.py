"""A fake NetSuite REST web services account: phoneCall records, SuiteQL, OAuth 2.0 bearer auth,
concurrency governance.

Shapes follow Oracle's SuiteTalk REST Web Services API Guide: a create answers 204 with no body and
the new record's URL in Location; a PATCH answers 204; references are {"id": "<internal id>"}
("Format of Selects and References"); enumeration values are written {"id": ...} or by reference
name ("Format of Enumeration Values"); errors are {"type", "title", "status", "o:errorDetails":
[{"detail", "o:errorCode"}]} ("Error Handling in REST Web Services", which lists status and
o:errorDetails; type and title are unverified); SuiteQL answers {"links", "count", "hasMore",
"items", "offset", "totalResults"} ("Executing SuiteQL Queries Through REST Web Services").
Requests beyond the account's concurrency limit get 429 (no Retry-After; unverified).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Fault, Refusal

ACCOUNT_HOST = "1234567.suitetalk.api.netsuite.com"
_ROOT = "/services/rest/record/v1"
_SUITEQL = "/services/rest/query/v1/suiteql"
_REFERENCES = {"assigned", "company", "contact", "owner", "supportcase", "transaction"}
# The phone call record's writable fields ("Phone Call", REST API records guide; createdDate and
# lastModifiedDate are read only there and refused here).
_FIELDS = _REFERENCES | {"title", "message", "status", "startDate", "phone", "priority", "externalId"}
_READ_ONLY = {"id", "createdDate", "lastModifiedDate"}
# Phone call status values (SOAP's PhoneCallStatus enumeration: _completed, _scheduled); the
# REST internal ids and reference names are unverified.
_STATUSES = {"COMPLETE": "Completed", "SCHEDULED": "Scheduled"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
# The one SuiteQL query the adapter sends.
_PHONE_CALL_QUERY = re.compile(
    r"SELECT id, message FROM phonecall WHERE contact = (\d+)"
    r" AND createddate >= TO_DATE\('(\d{4}-\d\d-\d\d)', 'YYYY-MM-DD'\) ORDER BY id DESC"
)
# SuiteQL pages hold at most 1,000 results (collection paging).
_PAGE_LIMIT = 1000


def _error(status: int, code: str, detail: str) -> FakeResponse:
    return FakeResponse(
        status,
        {
            "type": f"https://www.rfc-editor.org/rfc/rfc9110.html#status.{status}",
            "title": _TITLES[status],
            "status": status,
            "o:errorDetails": [{"detail": detail, "o:errorCode": code}],
        },
    )


def _enum_value(value: Any) -> str | None:
    """The internal id an enumeration value names: {"id": ...}, {"refName": ...}, or (the format
    before 2021.1, kept lenient as unverified) the bare internal id."""
    if isinstance(value, str):
        return value if value in _STATUSES else None
    if isinstance(value, dict) and set(value) == {"id"}:
        return value["id"] if value["id"] in _STATUSES else None
    if isinstance(value, dict) and set(value) == {"refName"}:
        return next((k for k, name in _STATUSES.items() if name == value["refName"]), None)
    return None


class FakeNetSuite(FakeCrm):
    name = "netsuite"
    identity_route = r"/services/rest/record/v1/metadata-catalog/phonecall"
    documented_refusals: ClassVar[tuple[Refusal, ...]] = (
        Refusal(
            "POST",
            f"{_ROOT}/phonecall",
            {"title": "x", "contact": 42},
            400,
            ("o:errorDetails", 0, "detail"),
            source='a reference is written {"id": internal id} (Format of Selects and References, '
            "SuiteTalk REST Web Services API Guide)",
        ),
        Refusal(
            "POST",
            f"{_ROOT}/phonecall",
            {"title": "x", "status": {"id": "DONE"}},
            400,
            ("o:errorDetails", 0, "detail"),
            source="status is an enumeration whose values the metadata catalog lists (Format of "
            "Enumeration Values; Working with Resource Metadata)",
        ),
        Refusal(
            "POST",
            f"{_ROOT}/phonecall",
            {"title": "x", "createdDate": "2026-01-01T00:00:00Z"},
            400,
            ("o:errorDetails", 0, "detail"),
            source="create date is read only on the phone call record (Phone Call, REST records guide)",
        ),
    )

    def __init__(self, *, token: str = "ns-token", concurrency_limit: int = 5) -> None:
        super().__init__()
        self.token = token
        self.concurrency_limit = concurrency_limit
        self.calls_made: dict[int, dict[str, Any]] = {}
        self.created_on: dict[int, date] = {}
        self._in_flight = 0
        self._next_id = 3000
        self.route("POST", f"{_ROOT}/phonecall", self._create)
        self.route("PATCH", rf"{_ROOT}/phonecall/(\d+)", self._patch)
        self.route("GET", rf"{_ROOT}/phonecall/(\d+)", self._read)
        self.route("POST", _SUITEQL, self._suiteql)
        self.route("GET", f"{_ROOT}/metadata-catalog/phonecall", self._metadata)

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        if self._in_flight >= self.concurrency_limit:
            self.requests.append(request)
            return _error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded.")
        self._in_flight += 1
        try:
            return await super().handle(request)
        finally:
            self._in_flight -= 1

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            refusal = _error(401, "INVALID_LOGIN", "Invalid login attempt.")
            # "RESTlets and REST Web Services Authentication Errors": the realm is the account ID.
            refusal.headers = {
                "WWW-Authenticate": 'Bearer realm="1234567", error="invalid_token", '
                'error_description="Invalid login attempt."'
            }
            return refusal
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "NONEXISTENT_ID", "The record instance does not exist.")

    def _check(self, body: Any, *, creating: bool) -> FakeResponse | None:
        if not isinstance(body, dict):
            return _error(400, "INVALID_CONTENT", "The request body is not a JSON object.")
        for name, value in body.items():
            if name in _READ_ONLY:
                return _error(400, "INVALID_CONTENT", f"The field {name} is read only.")
            if name not in _FIELDS:
                return _error(400, "INVALID_CONTENT", f"Invalid field name: {name}")
            if name in _REFERENCES and not (
                isinstance(value, dict) and set(value) == {"id"} and str(value["id"]).isdigit()
            ):
                return _error(400, "INVALID_CONTENT", f"Invalid reference in field {name}")
        if "status" in body and _enum_value(body["status"]) is None:
            return _error(400, "INVALID_CONTENT", "Invalid value for the enumeration field status")
        if "startDate" in body and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(body["startDate"])):
            return _error(400, "INVALID_CONTENT", "Invalid date in field startDate")
        if creating and not body.get("title"):
            return _error(400, "USER_ERROR", "Please enter a value for Subject.")
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        refusal = self._check(request.body, creating=True)
        if refusal:
            return refusal
        self._next_id += 1
        self.calls_made[self._next_id] = dict(request.body)
        self.created_on[self._next_id] = datetime.now(UTC).date()
        location = f"https://{ACCOUNT_HOST}{_ROOT}/phonecall/{self._next_id}"
        return FakeResponse(204, headers={"Location": location})

    def _patch(self, request: FakeRequest, call_id: str) -> FakeResponse:
        record = self.calls_made.get(int(call_id))
        if record is None:
            return self.not_found(request)
        refusal = self._check(request.body, creating=False)
        if refusal:
            return refusal
        record.update(request.body)
        return FakeResponse(204)

    def _read(self, request: FakeRequest, call_id: str) -> FakeResponse:
        # "Getting a Record Instance": the record with its links; fields= narrows the fields.
        record = self.calls_made.get(int(call_id))
        if record is None:
            return self.not_found(request)
        names = [n for n in request.query.get("fields", "").split(",") if n] or sorted(record)
        unknown = [n for n in names if n not in _FIELDS]
        if unknown:
            return _error(400, "INVALID_PARAMETER", f"Invalid field name in fields: {unknown[0]}")
        link = {"rel": "self", "href": f"https://{ACCOUNT_HOST}{_ROOT}/phonecall/{call_id}"}
        return FakeResponse(
            200, {"links": [link], "id": call_id, **{n: record[n] for n in names if n in record}}
        )

    def _suiteql(self, request: FakeRequest) -> FakeResponse:
        # "Using SuiteQL with SuiteTalk REST Web Services": POST suiteql with Prefer: transient
        # and {"q": query}. (That a query without the header is refused is unverified.)
        if request.headers.get("prefer") != "transient":
            return _error(400, "INVALID_HEADER", "The Prefer header must be transient.")
        body = request.body if isinstance(request.body, dict) else {}
        query = _PHONE_CALL_QUERY.fullmatch(str(body.get("q", "")))
        if query is None:
            return _error(400, "INVALID_PARAMETER", "Invalid search query: the fake answers one query.")
        limit = int(request.query.get("limit", _PAGE_LIMIT))
        if not 1 <= limit <= _PAGE_LIMIT:
            return _error(400, "INVALID_PARAMETER", "Invalid value of the limit query parameter.")
        since = date.fromisoformat(query[2])
        found = sorted(
            (
                i
                for i, record in self.calls_made.items()
                if record.get("contact") == {"id": query[1]} and self.created_on[i] >= since
            ),
            reverse=True,
        )
        # SuiteQL answers every column as text, under its lower-case name.
        items = [
            {"links": [], "id": str(i), "message": str(self.calls_made[i].get("message", ""))}
            for i in found[:limit]
        ]
        return FakeResponse(
            200,
            {
                "links": [],
                "count": len(items),
                "hasMore": len(found) > limit,
                "items": items,
                "offset": 0,
                "totalResults": len(found),
            },
        )

    record_store = "calls_made"
    body_path = ("message",)
    write_path = rf"^{_ROOT}/phonecall"

    def _metadata(self, request: FakeRequest) -> FakeResponse:
        # GET metadata-catalog/phonecall: any authenticated read proves the token is this account's.
        return FakeResponse(200, {"name": "phonecall", "links": []})
