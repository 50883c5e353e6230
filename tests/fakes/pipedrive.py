"""A fake Pipedrive: v2 activities, v1 activityTypes and users/me, with its auth, errors and rate limits.

Shapes follow Pipedrive's public API (the generated SDK pipedrive/client-nodejs names each model):
replies are {"success": true, "data": ...}; v1 errors are {"success": false, "error", "error_info",
"data": null, "additional_data": null}; v2 errors are {"success": false, "error", "code"} (the live v2
API's refusal of a top-level person_id, as quoted in Pipedrive's developer community thread "API v1 to
v2 upgrade: POST activities HTTP 400 responses"). Every reply carries x-ratelimit-limit/-remaining/-reset
for a 2-second burst window per token.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

# What POST and PATCH /api/v2/activities take: AddActivityRequest in the SDK
# (src/versions/v2/models/add-activity-request.ts). v2 validates input strictly (the v2 migration
# guide): an unknown field is refused, not ignored.
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
_INT_FIELDS = {"owner_id", "deal_id", "person_id", "org_id", "project_id", "priority"}
_BOOL_FIELDS = {"busy", "done"}
_STR_FIELDS = {"subject", "type", "lead_id", "due_date", "due_time", "duration", "public_description", "note"}
# The live v2 API's answer to a top-level person_id (thread quoted above): it is set by the
# primary participant only.
PERSON_ID_READ_ONLY = (
    "'person_id' is a read-only field. Add a primary participant to set 'person_id' instead."
)
# GET /api/v2/activities: "a maximum value of 500 is allowed" for limit (ActivitiesApi.getActivities).
_MAX_LIMIT = 500


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str) -> FakeResponse:
    """A v1 error (and the answer to every unknown path)."""
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


def _v2_error(status: int, message: str, code: str = "ERR_BAD_REQUEST") -> FakeResponse:
    return FakeResponse(status, {"success": False, "error": message, "code": code})


class FakePipedrive(FakeCrm):
    name = "pipedrive"
    identity_route = r"/api/v1/users/me"
    documented_refusals = (
        Refusal(
            "POST",
            "/api/v2/activities",
            {"subject": "SMS", "person_id": 42},
            400,
            ("error",),
            source="the live v2 API as quoted in Pipedrive's developer community thread 'API v1 to v2 "
            "upgrade: POST activities HTTP 400 responses'; the v1-to-v2 migration guide",
        ),
        Refusal(
            "POST",
            "/api/v2/activities",
            {"subject": "SMS", "participants": [{"person_id": "42", "primary": True}]},
            400,
            ("error",),
            source="pipedrive/client-nodejs "
            "src/versions/v2/models/add-activity-request-participants-inner.ts (person_id is a number); "
            "v2 validates input types strictly (v1-to-v2 migration guide)",
        ),
        Refusal(
            "POST",
            "/api/v2/activities",
            {"subject": "SMS", "contact_id": 42},
            400,
            ("error",),
            source="pipedrive/client-nodejs src/versions/v2/models/add-activity-request.ts (no contact_id); "
            "v2 refuses unknown fields (v1-to-v2 migration guide)",
        ),
    )

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
            # The ActivityType fields the adapter reads (SDK src/versions/v1/models/activity-type.ts).
            {"id": 1, "name": "Call", "key_string": "call", "icon_key": "call", "active_flag": True},
            {"id": 2, "name": "Meeting", "key_string": "meeting", "icon_key": "meeting", "active_flag": True},
            {
                "id": 9,
                "name": "SMS",
                "key_string": "sms",
                "icon_key": "bubble",
                "active_flag": sms_type_active,
            },
        ]
        self.activities: dict[int, dict[str, Any]] = {}
        self._company_of: dict[int, int] = {}
        self.burst_limit = burst_limit
        self._window_start = time.monotonic()
        self._window_count = 0
        self._next_id = 500
        # Only the documented /api/v1/ prefix is served, so a request on another is noticed.
        self.route("GET", r"/api/v1/users/me", self._me)
        self.route("GET", r"/api/v1/activityTypes", self._types)
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
        """Why POST/PATCH /api/v2/activities refuses this body, or None (AddActivityRequest)."""
        if not isinstance(body, dict):
            return "body must be a JSON object"
        unknown = set(body) - _ACTIVITY_FIELDS
        if unknown:
            return f"unknown fields: {sorted(unknown)}"
        if "person_id" in body:
            return PERSON_ID_READ_ONLY
        for name in _INT_FIELDS & set(body):
            if not isinstance(body[name], int) or isinstance(body[name], bool):
                return f"{name} must be an integer"
        for name in _BOOL_FIELDS & set(body):
            if not isinstance(body[name], bool):
                return f"{name} must be a boolean"
        for name in _STR_FIELDS & set(body):
            if not isinstance(body[name], str):
                return f"{name} must be a string"
        if "participants" in body and (problem := _participants_problem(body["participants"])):
            return problem
        # type: a key_string of the account's activity types (GET /api/v1/activityTypes).
        if "type" in body and body["type"] not in {t["key_string"] for t in self.activity_types}:
            return "type is not a known activity type"
        # due_date "YYYY-MM-DD", due_time "HH:MM" (the v1 Activity model's documented formats).
        if "due_date" in body and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", body["due_date"]):
            return "due_date must be YYYY-MM-DD"
        if "due_time" in body and not re.fullmatch(r"\d{2}:\d{2}", body["due_time"]):
            return "due_time must be HH:MM"
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        problem = self._check(request.body)
        if problem:
            return _v2_error(400, problem)
        self._next_id += 1
        activity = {
            "id": self._next_id,
            "done": False,
            **request.body,
            **_primary_person(request.body),
            "add_time": _now_iso(),
            "update_time": _now_iso(),
        }
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
            return _v2_error(400, problem)
        activity.update(request.body, **_primary_person(request.body), update_time=_now_iso())
        return FakeResponse(200, {"success": True, "data": activity})

    def _own(self, request: FakeRequest, activity_id: str) -> dict[str, Any] | None:
        """The activity, if it is the requesting token's company's (another's is not found)."""
        key = int(activity_id)
        if self._company_of.get(key, self._company(request)) != self._company(request):
            return None
        return self.activities.get(key)

    def _list(self, request: FakeRequest) -> FakeResponse:
        # GET /api/v2/activities (ActivitiesApi.getActivities): person_id is the primary
        # participant, updated_since an RFC 3339 time ("later than or equal to"), limit at most 500.
        query = request.query
        person = query.get("person_id")
        since = query.get("updated_since", "")
        limit = query.get("limit", "100")
        if person is not None and not person.isdigit():
            return _v2_error(400, "person_id must be an integer")
        if since and not re.fullmatch(
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", since
        ):
            return _v2_error(400, "updated_since must be an RFC 3339 time")
        if not limit.isdigit() or not 1 <= int(limit) <= _MAX_LIMIT:
            return _v2_error(400, f"limit must be between 1 and {_MAX_LIMIT}")
        found = [
            a
            for a in self.activities.values()
            if self._company_of.get(a["id"]) == self._company(request)
            and (person is None or str(a.get("person_id")) == person)
            and a["update_time"] >= since
        ]
        return FakeResponse(
            200, {"success": True, "data": found[: int(limit)], "additional_data": {"next_cursor": None}}
        )

    def _delete(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        if self._own(request, activity_id) is None or self.activities.pop(int(activity_id), None) is None:
            return _error(404, "Activity not found")
        return FakeResponse(200, {"success": True, "data": {"id": int(activity_id)}})

    # What the contract suite reads back.
    record_store = "activities"
    body_path = ("note",)
    write_path = r"^/api/v2/activities"


def _participants_problem(participants: Any) -> str | None:
    """participants: [{person_id: int, primary: bool}] (AddActivityRequestParticipantsInner), one primary."""
    if not isinstance(participants, list):
        return "participants must be a list"
    for participant in participants:
        if not isinstance(participant, dict) or set(participant) - {"person_id", "primary"}:
            return "a participant is {person_id, primary}"
        person = participant.get("person_id")
        if not isinstance(person, int) or isinstance(person, bool):
            return "participants.person_id must be an integer"
        if not isinstance(participant.get("primary", False), bool):
            return "participants.primary must be a boolean"
    if sum(1 for p in participants if p.get("primary")) > 1:
        return "only one participant can be primary"
    return None


def _primary_person(body: dict[str, Any]) -> dict[str, Any]:
    """The read-only person_id the API derives from the primary participant (ActivityItem.person_id)."""
    if "participants" not in body:
        return {}
    primary = next((p["person_id"] for p in body["participants"] if p.get("primary")), None)
    return {"person_id": primary}
