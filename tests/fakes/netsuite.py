"""A fake NetSuite REST record service: phoneCall records, OAuth 2.0 bearer auth, concurrency governance.

Shapes follow NetSuite's REST web services: a create answers 204 with no body and the new record's
URL in Location; a PATCH answers 204; references are {"id": "<internal id>"}; errors are
{"type", "title", "status", "o:errorDetails": [{"detail", "o:errorCode"}]}. Requests beyond the
account's concurrency limit get 429 (no Retry-After).
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Fault

ACCOUNT_HOST = "1234567.suitetalk.api.netsuite.com"
_ROOT = "/services/rest/record/v1"
_REFERENCES = {"assigned", "company", "contact", "owner", "supportcase", "transaction"}
_FIELDS = _REFERENCES | {"title", "message", "status", "startDate", "phone", "priority", "externalId"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


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


class FakeNetSuite(FakeCrm):
    name = "netsuite"
    identity_route = r"/services/rest/record/v1/metadata-catalog/phonecall"

    def __init__(self, *, token: str = "ns-token", concurrency_limit: int = 5) -> None:
        super().__init__()
        self.token = token
        self.concurrency_limit = concurrency_limit
        self.calls_made: dict[int, dict[str, Any]] = {}
        self._in_flight = 0
        self._next_id = 3000
        self.route("POST", f"{_ROOT}/phonecall", self._create)
        self.route("PATCH", rf"{_ROOT}/phonecall/(\d+)", self._patch)
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
            return _error(401, "INVALID_LOGIN", "Invalid login attempt.")
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "NONEXISTENT_ID", "The record instance does not exist.")

    def _check(self, body: Any, *, creating: bool) -> FakeResponse | None:
        if not isinstance(body, dict):
            return _error(400, "INVALID_CONTENT", "The request body is not a JSON object.")
        for name, value in body.items():
            if name not in _FIELDS:
                return _error(400, "INVALID_CONTENT", f"Invalid field name: {name}")
            if name in _REFERENCES and not (
                isinstance(value, dict) and set(value) == {"id"} and str(value["id"]).isdigit()
            ):
                return _error(400, "INVALID_CONTENT", f"Invalid reference in field {name}")
        if body.get("status", "COMPLETE") not in ("COMPLETE", "SCHEDULED"):
            return _error(400, "INVALID_CONTENT", "Invalid status")
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

    record_store = "calls_made"
    body_path = ("message",)
    write_path = rf"^{_ROOT}/phonecall"

    def _metadata(self, request: FakeRequest) -> FakeResponse:
        # GET metadata-catalog/phonecall: any authenticated read proves the token is this account's.
        return FakeResponse(200, {"name": "phonecall", "links": []})
