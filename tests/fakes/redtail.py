"""A fake Redtail public API v1: activities linked to contacts, with its UserKey auth and errors.

Shapes follow what Redtail's v1 clients read: an activity reply is {"activity": {...}} with a
numeric id, linked contacts as [{"contact_id": ...}], dates in ISO 8601. Redtail does not publish
its error bodies; this fake answers {"message": ...}, 401 for a refused key and 422 for fields
it does not know.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

_ACTIVITY_FIELDS = {
    "subject",
    "description",
    "start_date",
    "end_date",
    "all_day",
    "activity_code_id",
    "category_id",
    "repeats",
    "completed",
    "importance",
    "linked_contacts",
    "attendees",
}
_REQUIRED_ON_CREATE = {"subject", "start_date", "end_date", "activity_code_id"}
_ISO_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"message": message})


class FakeRedtail(FakeCrm):
    name = "redtail"
    identity_route = r"/api/public/v1/authentication"
    # UNVERIFIED: Redtail publishes no activities reference; these are the rules this fake keeps
    # so that the adapter's own payload stays as the previous product sent it.
    documented_refusals = (
        Refusal(
            "POST",
            "/api/public/v1/activities",
            {"description": "d", "start_date": "2026-01-01T10:00:00Z", "end_date": "2026-01-01T10:00:00Z"},
            422,
            ("message",),
            source="unverified: no official Redtail source; subject and activity_code_id assumed required",
        ),
        Refusal(
            "POST",
            "/api/public/v1/activities",
            {
                "subject": "s",
                "start_date": "2026-01-01T10:00:00Z",
                "end_date": "2026-01-01T10:00:00Z",
                "activity_code_id": 3,
                "note": "n",
            },
            422,
            ("message",),
            source="unverified: no official Redtail source; unknown fields assumed refused",
        ),
    )

    def __init__(self, *, api_key: str = "rt-api-key", user_key: str = "rt-user-key") -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.database_id = 1200
        self.header = "Userkeyauth " + base64.b64encode(f"{api_key}:{user_key}".encode()).decode()
        self.contact_ids = {42}
        self.activity_codes = {1, 2, 3}
        self.activities: dict[int, dict[str, Any]] = {}
        self._next_id = 880_000
        self.route("POST", r"/api/public/v1/activities", self._create)
        self.route("GET", r"/api/public/v1/activities/(\d+)", self._get)
        self.route("PATCH", r"/api/public/v1/activities/(\d+)", self._patch)
        self.route("DELETE", r"/api/public/v1/activities/(\d+)", self._delete)
        self.route("GET", r"/api/public/v1/authentication", self._authentication)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != self.header:
            return _error(401, "Unauthorized")
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "Not Found")

    def _check(self, body: Any, *, creating: bool) -> str | None:
        if not isinstance(body, dict):
            return "the body must be a JSON object"
        if unknown := set(body) - _ACTIVITY_FIELDS:
            return f"unknown fields: {sorted(unknown)}"
        if creating and (missing := _REQUIRED_ON_CREATE - set(body)):
            return f"missing fields: {sorted(missing)}"
        for name in ("start_date", "end_date"):
            if name in body and not re.fullmatch(_ISO_TIME, str(body[name])):
                return f"{name} must be an ISO 8601 date-time"
        if "activity_code_id" in body and body["activity_code_id"] not in self.activity_codes:
            return "activity_code_id is not an activity code of this database"
        links = body.get("linked_contacts", [])
        if not isinstance(links, list) or not all(
            isinstance(link, dict)
            and set(link) == {"contact_id"}
            and type(link["contact_id"]) is int
            and link["contact_id"] in self.contact_ids
            for link in links
        ):
            return "linked_contacts must be [{contact_id}] of existing contacts"
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        if problem := self._check(request.body, creating=True):
            return _error(422, problem)
        self._next_id += 1
        activity = {"id": self._next_id, "completed": False, **request.body}
        self.activities[self._next_id] = activity
        return FakeResponse(201, {"activity": activity})

    def _get(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        activity = self.activities.get(int(activity_id))
        return FakeResponse(200, {"activity": activity}) if activity else self.not_found(request)

    def _patch(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        activity = self.activities.get(int(activity_id))
        if activity is None:
            return self.not_found(request)
        if problem := self._check(request.body, creating=False):
            return _error(422, problem)
        activity.update(request.body)
        return FakeResponse(200, {"activity": activity})

    def _delete(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        if self.activities.pop(int(activity_id), None) is None:
            return self.not_found(request)
        return FakeResponse(204)

    def _authentication(self, request: FakeRequest) -> FakeResponse:
        # GET /authentication: the user key's user and database (unverified: no official source).
        return FakeResponse(
            200, {"authenticated_user": {"user_id": 77, "database_id": self.database_id, "user_key": "x"}}
        )

    # What the contract suite reads back.
    record_store = "activities"
    body_path = ("description",)
    write_path = r"^/api/public/v1/activities"
