"""A fake Pipedrive: v2 activities, v1 activityTypes and users/me, with its auth, errors and rate limits.

Shapes follow Pipedrive's public API: replies are {"success": true, "data": ...}; errors are
{"success": false, "error": ..., "error_info": ..., "data": null, "additional_data": null};
every reply carries x-ratelimit-limit/-remaining/-reset for a 2-second burst window per token.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

_ACTIVITY_FIELDS = {
    "subject",
    "type",
    "owner_id",
    "deal_id",
    "lead_id",
    "person_id",
    "org_id",
    "project_id",
    "due_date",
    "due_time",
    "duration",
    "busy",
    "done",
    "location",
    "participants",
    "attendees",
    "public_description",
    "priority",
    "note",
}
_INT_FIELDS = {"owner_id", "deal_id", "person_id", "org_id", "project_id"}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(
        status,
        {
            "success": False,
            "error": message,
            "error_info": "Please check developers.pipedrive.com",
            "data": None,
            "additional_data": None,
        },
    )


class FakePipedrive(FakeCrm):
    name = "pipedrive"
    identity_route = r"/v1/users/me"

    def __init__(
        self, *, token: str = "pd-token", sms_type_active: bool = True, burst_limit: int = 80
    ) -> None:
        super().__init__()
        # Each token belongs to one company; a company sees only its own activities.
        self.companies: dict[str, int] = {token: 7001}
        self.user = {
            "id": 1001,
            "name": "Alice Agent",
            "email": "alice@example.com",
            "company_id": 7001,
            "company_domain": "acme",
        }
        self.activity_types = [
            {"id": 1, "name": "Call", "key_string": "call", "active_flag": True},
            {"id": 2, "name": "Meeting", "key_string": "meeting", "active_flag": True},
            {"id": 9, "name": "SMS", "key_string": "sms", "active_flag": sms_type_active},
        ]
        self.activities: dict[int, dict[str, Any]] = {}
        self._company_of: dict[int, int] = {}
        self.burst_limit = burst_limit
        self._window_start = time.monotonic()
        self._window_count = 0
        self._next_id = 500
        self.route("GET", r"/v1/users/me", self._me)
        self.route("GET", r"/v1/activityTypes", self._types)
        self.route("POST", r"/api/v2/activities", self._create)
        self.route("GET", r"/api/v2/activities", self._list)
        self.route("GET", r"/api/v2/activities/(\d+)", self._get)
        self.route("PATCH", r"/api/v2/activities/(\d+)", self._patch)
        self.route("DELETE", r"/api/v2/activities/(\d+)", self._delete)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or header.removeprefix("Bearer ") not in self.companies:
            return _error(401, "unauthorized access")
        now = time.monotonic()
        if now - self._window_start >= 2:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.burst_limit:
            response = _error(429, "Request over limit")
            response.headers = {**self.rate_limit_headers(), "retry-after": "2"}
            return response
        return None

    def rate_limit_headers(self) -> dict[str, str]:
        remaining = max(0, self.burst_limit - self._window_count)
        reset = max(1, round(2 - (time.monotonic() - self._window_start)))
        return {
            "x-ratelimit-limit": str(self.burst_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
        }

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "Unknown method .")

    def add_company(self, token: str, company_id: int) -> None:
        """Another company's token: its users/me names that company, and it sees only its activities."""
        self.companies[token] = company_id

    def _company(self, request: FakeRequest) -> int:
        return self.companies[request.headers["authorization"].removeprefix("Bearer ")]

    def _me(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(
            200, {"success": True, "data": {**self.user, "company_id": self._company(request)}}
        )

    def _types(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"success": True, "data": self.activity_types})

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        unknown = set(body) - _ACTIVITY_FIELDS
        if unknown:
            return f"unknown fields: {sorted(unknown)}"
        for name in _INT_FIELDS & set(body):
            if not isinstance(body[name], int) or isinstance(body[name], bool):
                return f"{name} must be an integer"
        if "type" in body and body["type"] not in {t["key_string"] for t in self.activity_types}:
            return "type is not a known activity type"
        if "due_date" in body and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(body["due_date"])):
            return "due_date must be YYYY-MM-DD"
        if "due_time" in body and not re.fullmatch(r"\d{2}:\d{2}", str(body["due_time"])):
            return "due_time must be HH:MM"
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        problem = self._check(request.body)
        if problem:
            return _error(400, problem)
        self._next_id += 1
        activity = {"id": self._next_id, "done": False, **request.body, "update_time": _now_iso()}
        self.activities[self._next_id] = activity
        self._company_of[self._next_id] = self._company(request)
        return FakeResponse(200, {"success": True, "data": activity})

    def _get(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        activity = self._own(request, activity_id)
        if activity is None:
            return _error(404, "Activity not found")
        return FakeResponse(200, {"success": True, "data": activity})

    def _patch(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        activity = self._own(request, activity_id)
        if activity is None:
            return _error(404, "Activity not found")
        problem = self._check(request.body)
        if problem:
            return _error(400, problem)
        activity.update(request.body, update_time=_now_iso())
        return FakeResponse(200, {"success": True, "data": activity})

    def _own(self, request: FakeRequest, activity_id: str) -> dict[str, Any] | None:
        """The activity, if it is the requesting token's company's (another's is not found)."""
        key = int(activity_id)
        if self._company_of.get(key, self._company(request)) != self._company(request):
            return None
        return self.activities.get(key)

    def _list(self, request: FakeRequest) -> FakeResponse:
        person = request.query.get("person_id")
        since = request.query.get("updated_since", "")
        found = [
            a
            for a in self.activities.values()
            if self._company_of.get(a["id"]) == self._company(request)
            and (person is None or str(a.get("person_id")) == person)
            and a["update_time"] >= since
        ]
        limit = int(request.query.get("limit", "100"))
        return FakeResponse(
            200, {"success": True, "data": found[:limit], "additional_data": {"next_cursor": None}}
        )

    def _delete(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        if self._own(request, activity_id) is None or self.activities.pop(int(activity_id), None) is None:
            return _error(404, "Activity not found")
        return FakeResponse(200, {"success": True, "data": {"id": int(activity_id)}})

    # What the contract suite reads back.
    record_store = "activities"
    body_path = ("note",)
    write_path = r"^/api/v2/activities"
